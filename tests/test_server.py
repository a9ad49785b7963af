"""`make server` / `make stop` (the chosen kind of server), and PouchDB Server's launcher."""

import os
import subprocess
import sys
import time

from draws import dbserver
import requests

from draws.couch import Server, safe_url
from support import ON_COUCHDB, RELEASE, ROOT, SERVER_NAME, free_port, server_url


def run(env, *args):
    return subprocess.run([sys.executable, "-m", "draws", "server", *args], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=60)


def test_start_is_a_no_op_when_a_server_answers_and_stop_stops_only_ours(tmp_path, couch_url):
    password = "pw-Not-2-b3-seen"
    url = server_url(admin=("operator", password))   # made its admin (CouchDB 3 needs one)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
    env.update(DRAWS_COUCHDB_URL=url, DRAWS_VAR=str(tmp_path))
    if ON_COUCHDB:
        env["DRAWS_COUCHDB_RELEASE"] = RELEASE
    res = run(env, "start")
    assert res.returncode == 0 and f"{SERVER_NAME} started on" in res.stdout, res.stderr
    assert Server(url, wait=False).up()
    data = tmp_path / ("apache-couchdb" if ON_COUCHDB else "couchdb")
    Server(url).db("probe").create()   # its data lands under DRAWS_VAR, nowhere else
    assert any("probe" in p.name for p in (data / "data").rglob("*"))
    assert not (ROOT / "config.json").exists() and not (ROOT / "log.txt").exists()
    assert password not in res.stdout + res.stderr
    # The URL's user is its admin: a wrong password is refused.
    assert requests.get(f"{safe_url(url)}/_session", auth=("operator", "wrong"), timeout=10).status_code == 401

    again = run(env, "start")
    assert again.returncode == 0 and "already answers" in again.stdout

    assert run(env, "stop").returncode == 0
    assert not Server(url, wait=False).up()
    assert "no server was started here" in run(env, "stop").stdout

    # Started again on the same data, as the same admin.
    assert f"{SERVER_NAME} started on" in run(env, "start").stdout
    assert run(env, "stop").returncode == 0

    # A server we did not start (the session's) is used as is and never stopped.
    env_other = dict(env, DRAWS_COUCHDB_URL=couch_url, DRAWS_VAR=str(tmp_path / "other"))
    assert "already answers" in run(env_other, "start").stdout
    assert "no server was started here" in run(env_other, "stop").stdout
    assert Server(couch_url, wait=False).up()


def test_apache_couchdb_needs_an_admin_and_a_release(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
    env.update(DRAWS_COUCHDB_URL=f"http://127.0.0.1:{free_port()}", DRAWS_VAR=str(tmp_path),
               DRAWS_COUCHDB_RELEASE=str(tmp_path / "nowhere"))
    res = run(env, "start")
    assert res.returncode == 1 and "DRAWS_COUCHDB_RELEASE names" in res.stderr, res.stderr
    if RELEASE:
        res = run(dict(env, DRAWS_COUCHDB_RELEASE=RELEASE), "start")
        assert res.returncode == 1 and "needs an admin" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "couchdb.pid").exists()


def test_the_launcher_counts_requests_and_keeps_the_admins_settings(tmp_path):
    """draws/pouchdb-server.js: the request counter for `make bench`; config.json merged, not replaced."""
    from support import wait_for
    data = tmp_path / "couch"
    data.mkdir()
    (data / "config.json").write_text('{"admins": {"someone": "pw"}, "log": {"level": "info"}}')
    count = tmp_path / "requests.txt"
    url = f"http://127.0.0.1:{free_port()}"
    proc = dbserver.spawn(url, data, env=dict(os.environ, DRAWS_REQUEST_COUNT_FILE=str(count)))
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
    def hung_up_feeds_left(launcher):
        url = f"http://127.0.0.1:{free_port()}"
        data = tmp_path / launcher.name
        data.mkdir()
        out = data / "out.txt"
        cmd = dbserver.command(int(url.rsplit(":", 1)[1]), data_dir=data, in_memory=True)
        cmd[2] = str(launcher)
        proc = subprocess.Popen(cmd, cwd=data, stdout=out.open("w"), stderr=subprocess.STDOUT)
        try:
            assert dbserver.wait_until_up(url, proc=proc)
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

    assert hung_up_feeds_left(dbserver.BINARY)        # the bug, as shipped
    assert not hung_up_feeds_left(dbserver.LAUNCHER)  # fixed
