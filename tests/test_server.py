"""`make server` / `make stop`: the embedded server's start and stop."""

import os
import subprocess
import sys

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
    assert (tmp_path / "couchdb" / "log.txt").exists() or (tmp_path / "couchdb" / "config.json").exists()
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
