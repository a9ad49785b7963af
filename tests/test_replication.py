"""`python -m draws replication` between secured servers: credentials come from
the environment or a credentials file, never from the command line."""

import os
import random
import subprocess
import sys

import pytest

from draws import tables
from draws.couch import Server
from support import ROOT, free_port, start_server, wait_for

NET = f"127.{random.randint(10, 250)}.{random.randint(0, 250)}"
JAO_IP, ARC_IP = f"{NET}.2", f"{NET}.3"
JAO_AUTH, ARC_AUTH = ("jaoadmin", "J-pa55word"), ("arcadmin", "A-pa55word")


@pytest.fixture
def sites(tmp_path):
    """Two secured servers, JAO and an ARC, each with its own admin: {name: (url, auth)}."""
    made, procs = {}, []
    for name, ip, auth in (("jao", JAO_IP, JAO_AUTH), ("arc", ARC_IP, ARC_AUTH)):
        url = f"http://{ip}:{free_port(ip)}"
        procs.append(start_server(with_auth(url, auth), tmp_path / name, log_file=tmp_path / f"{name}.log"))
        made[name] = (url, auth)
    yield made
    for proc in procs:
        proc.kill()
        proc.wait()


def with_auth(url, auth):
    return url.replace("://", f"://{auth[0]}:{auth[1]}@")


def run(tmp_path, command, jao, arc, **env):
    """The command as a person types it, with HOME in tmp_path (no ~/.netrc of the machine)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
    full.update(HOME=str(tmp_path), **env)
    res = subprocess.run([sys.executable, "-m", "draws", "replication", command, "--jao", jao, "--arc", arc],
                         cwd=str(ROOT), env=full, capture_output=True, text=True, timeout=120)
    for _, password in (JAO_AUTH, ARC_AUTH):
        assert password not in res.stdout + res.stderr
    return res


def credentials_file(tmp_path, *lines, mode=0o600):
    path = tmp_path / "draws-credentials"
    path.write_text("".join(f"machine {host} login {user} password {password}\n" for host, user, password in lines))
    path.chmod(mode)
    return path


def replications(url, auth):
    server = Server(with_auth(url, auth), wait=False)
    if "_replicator" not in server.all_dbs():
        return []
    return [i for i in server.db("_replicator").ids() if i.startswith("draws-")]


def test_a_password_on_the_command_line_is_refused_with_what_to_do(sites, tmp_path):
    (jao, jao_auth), (arc, arc_auth) = sites["jao"], sites["arc"]
    for command in ("setup", "status", "teardown"):
        for args in ((with_auth(jao, jao_auth), arc), (jao, with_auth(arc, arc_auth))):
            res = run(tmp_path, command, *args)
            assert res.returncode == 2, res.stderr
            err = " ".join(res.stderr.split())
            assert "refused, it carries credentials" in err and "(ps)" in err
            assert "DRAWS_COUCHDB_URL" in err and "DRAWS_CREDENTIALS_FILE" in err and "machine HOST" in err
            assert "Traceback" not in err
    assert replications(jao, jao_auth) == [] and replications(arc, arc_auth) == []


def test_credentials_from_the_environment_and_a_file_replicate(sites, tmp_path):
    (jao, jao_auth), (arc, arc_auth) = sites["jao"], sites["arc"]
    env = {"DRAWS_COUCHDB_URL": with_auth(jao, jao_auth),        # this host's server: JAO
           "DRAWS_CREDENTIALS_FILE": str(credentials_file(tmp_path, (ARC_IP, *arc_auth)))}
    res = run(tmp_path, "setup", jao, arc, **env)
    assert res.returncode == 0 and res.stdout.count("created") == 7, res.stderr
    assert len(replications(arc, arc_auth)) == 6 and len(replications(jao, jao_auth)) == 1
    # The replications carry the credentials to each other's server: a document crosses.
    Server(with_auth(jao, jao_auth)).db(tables.STATUS).put({"_id": "crossed", "state": "x"})
    arc_status = Server(with_auth(arc, arc_auth)).db(tables.STATUS)
    wait_for(lambda: arc_status.get_or_none("crossed"), timeout=60, what="the document replicated to the ARC")
    res = run(tmp_path, "status", jao, arc, **env)
    assert res.returncode == 0 and "missing" not in res.stdout and " ?" not in res.stdout, res.stdout
    res = run(tmp_path, "teardown", jao, arc, **env)
    assert res.returncode == 0 and res.stdout.count("removed") == 7
    assert replications(jao, jao_auth) == [] and replications(arc, arc_auth) == []

    # The file may also be ~/.netrc; ~/.netrc readable by others is refused, like any such file.
    netrc = credentials_file(tmp_path, (JAO_IP, *jao_auth), (ARC_IP, *arc_auth))
    netrc.rename(tmp_path / ".netrc")
    assert run(tmp_path, "setup", jao, arc).returncode == 0
    (tmp_path / ".netrc").chmod(0o644)
    res = run(tmp_path, "status", jao, arc)
    assert res.returncode == 1 and "chmod 600" in res.stderr and "Traceback" not in res.stderr


def test_missing_or_wrong_credentials_are_one_clear_line(sites, tmp_path):
    (jao, jao_auth), (arc, _) = sites["jao"], sites["arc"]
    res = run(tmp_path, "setup", jao, arc)                              # none anywhere
    assert res.returncode == 1 and "401" in res.stderr and "Traceback" not in res.stderr
    res = run(tmp_path, "setup", jao, arc, DRAWS_CREDENTIALS_FILE=str(tmp_path / "nothing-here"))
    assert res.returncode == 1 and "does not exist" in res.stderr
    wrong = credentials_file(tmp_path, (ARC_IP, "arcadmin", "wrong"))
    res = run(tmp_path, "setup", jao, arc, DRAWS_COUCHDB_URL=with_auth(jao, jao_auth),
              DRAWS_CREDENTIALS_FILE=str(wrong))
    assert res.returncode == 1 and "401" in res.stderr and "Traceback" not in res.stderr
    assert replications(arc, ARC_AUTH) == []
