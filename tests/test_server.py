"""`make server` / `make stop`: the embedded server's start and stop."""

import os
import subprocess
import sys
import time

from draws.couch import Server
from support import ROOT, free_port


def run(env, *args):
    return subprocess.run([sys.executable, "-m", "draws", "server", *args], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=60)


def test_start_is_a_no_op_when_a_server_answers_and_stop_stops_only_ours(tmp_path, couch_url):
    url = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ, DRAWS_COUCHDB_URL=url, DRAWS_VAR=str(tmp_path))
    res = run(env, "start")
    assert res.returncode == 0 and "PouchDB Server started on" in res.stdout, res.stderr
    assert Server(url, wait=False).up()
    Server(url).db("probe").create()   # its data lands under DRAWS_VAR, nowhere else
    assert (tmp_path / "couchdb" / "data" / "probe").is_dir()
    assert not (ROOT / "config.json").exists() and not (ROOT / "log.txt").exists()

    again = run(env, "start")
    assert again.returncode == 0 and "already answers" in again.stdout

    assert run(env, "stop").returncode == 0
    assert not Server(url, wait=False).up()
    assert "no embedded server was started here" in run(env, "stop").stdout

    # A server we did not start (the session's) is used as is and never stopped.
    env_other = dict(env, DRAWS_COUCHDB_URL=couch_url, DRAWS_VAR=str(tmp_path / "other"))
    assert "already answers" in run(env_other, "start").stdout
    assert "no embedded server was started here" in run(env_other, "stop").stdout
    assert Server(couch_url, wait=False).up()


def test_the_launcher_counts_requests_and_keeps_the_admins_settings(tmp_path):
    """draws/pouchdb-server.js: the request counter for `make bench`; config.json merged, not replaced."""
    from draws import server as embedded
    from support import wait_for
    data = tmp_path / "couch"
    data.mkdir()
    (data / "config.json").write_text('{"admins": {"someone": "pw"}, "log": {"level": "info"}}')
    count = tmp_path / "requests.txt"
    url = f"http://127.0.0.1:{free_port()}"
    proc = embedded.spawn(url, data, env=dict(os.environ, DRAWS_REQUEST_COUNT_FILE=str(count)))
    try:
        import json
        settings = json.loads((data / "config.json").read_text())
        assert "someone" in settings["admins"] and settings["log"]["level"] == "info"
        assert settings["log"]["file"] == str(data / "log.txt")
        server = Server(url.replace("://", "://someone:pw@"), wait=False)
        wait_for(lambda: count.exists(), 10, what="the request count")
        before = int(count.read_text())
        for _ in range(7):
            server.request("GET", "")
        wait_for(lambda: int(count.read_text()) >= before + 7, 10, what="7 more requests counted")
        assert "disk_size" not in server.request("GET", "_users")   # not measured (see the launcher)
    finally:
        proc.kill()
        proc.wait()


def test_a_continuous_feed_ends_when_its_client_hangs_up(tmp_path):
    """PouchDB Server 4.2.0 keeps serving a hung-up continuous feed; draws/pouchdb-server.js ends it.

    Seen from outside: each live feed is a listener on the database's change
    events, and Node warns once a database has more than ten.
    """
    from draws import server as embedded

    def hung_up_feeds_left(launcher):
        url = f"http://127.0.0.1:{free_port()}"
        data = tmp_path / launcher.name
        data.mkdir()
        out = data / "out.txt"
        cmd = embedded.command(int(url.rsplit(":", 1)[1]), data_dir=data, in_memory=True)
        cmd[2] = str(launcher)
        proc = subprocess.Popen(cmd, cwd=data, stdout=out.open("w"), stderr=subprocess.STDOUT)
        try:
            assert embedded.wait_until_up(url, proc=proc)
            server = Server(url, wait=False)
            server.request("PUT", "feeds")
            server.request("PUT", "feeds/one", body={})
            for _ in range(15):
                feed = server.db("feeds").follow(0)
                next(feed)      # connected: it sent the first change
                feed.close()    # and hang up
            server.request("PUT", "feeds/two", body={})
            time.sleep(1)
        finally:
            proc.kill()
            proc.wait()
        return "MaxListenersExceededWarning" in out.read_text()

    assert hung_up_feeds_left(embedded.BINARY)        # the bug, as shipped
    assert not hung_up_feeds_left(embedded.LAUNCHER)  # fixed
