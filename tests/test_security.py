"""Security: HTTP servers keep to their folder and loopback; CouchDB with
authentication keeps anonymous clients out and the password out of sight;
clear-all-dbs.py touches only the six DRAWS tables."""

import base64
import http.client
import socket
from pathlib import Path

import pytest
import requests

from draws import tables
from draws.couch import Server, split_credentials
from draws.ous import StatusTable
from support import ON_COUCHDB, Actors, free_port, server_url, start_server, wait_for
from test_faults import Fleet
from test_lifecycle import PROG, assert_delivered

PASSWORD = "Pw-n0t-t0-b3-s33n"
USER = "drawsadmin"


def get(port, path, host="127.0.0.1", login=None):
    """A raw GET (no client-side path normalisation), with LOGIN (user, password)
    if given: (status, body)."""
    headers = {}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read().decode(errors="replace")


def listening_addresses(port):
    """The local addresses a TCP socket listens on at PORT (from /proc/net/tcp*)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, _, state = line.split()[1:4]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:   # 0A = LISTEN
                raw = bytes.fromhex(addr)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def other_address():
    """An address of this host that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))   # no packet is sent; picks the outgoing interface
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def refused_from_outside(port):
    addr = other_address()
    if addr is None:
        return True   # only loopback here: nothing else to reach it by
    try:
        socket.create_connection((addr, port), timeout=3).close()
        return False
    except OSError:
        return True


def test_cache_server_and_dashboard_serve_only_their_folder_on_loopback(actors, env, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    jao = Path(env["DRAWS_JAO_CACHE"])
    (jao / "index-link").symlink_to(secret)
    (jao / "dir-link").symlink_to(tmp_path)
    cache_port, dash_port = free_port(), free_port()
    cache = actors.start("replicated-cache.py", "-p", cache_port)
    dash = actors.start("dashboard/server.py", "--port", dash_port)
    wait_for(lambda: listening_addresses(cache_port) and listening_addresses(dash_port),
             what="both servers listening")
    assert listening_addresses(cache_port) == {"127.0.0.1"}
    assert listening_addresses(dash_port) == {"127.0.0.1"}
    assert refused_from_outside(cache_port) and refused_from_outside(dash_port)

    assert get(cache_port, "/weblogs/")[0] == 200
    for path in ("/../secret.txt", "/weblogs/../../secret.txt", "/%2e%2e/secret.txt",
                 "/..%2fsecret.txt", "/index-link", "/dir-link/secret.txt", "//etc/passwd",
                 "/weblogs/%2e%2e/%2e%2e/secret.txt"):
        status, body = get(cache_port, path)
        assert status == 404 and "top secret" not in body and "root:" not in body, path
    # A CouchDB URL with a user (always on Apache CouchDB 3) makes browsers log in to the
    # dashboard, with that user: every path, its files too, is 401 without the login.
    login = split_credentials(env["DRAWS_COUCHDB_URL"])[1]
    wait_for(lambda: get(dash_port, "/static/dashboard.css", login=login)[0] == 200, what="the dashboard")
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                 "/static/../../draws/couch.py", "/static//etc/passwd", "/../../etc/passwd",
                 "/static/%2e%2e/%2e%2e/tests/test_security.py"):
        status, body = get(dash_port, path, login=login)   # 308: Werkzeug merges the slashes, then 404
        assert status in (308, 400, 404) and "import" not in body and "root:" not in body, path
    assert get(dash_port, "/static/etc/passwd", login=login)[0] == 404
    if login:
        assert get(dash_port, "/static/dashboard.css")[0] == 401
    assert cache.alive() and dash.alive()


def test_cache_server_binds_another_address_only_when_told(actors, env):
    port = free_port()
    actors.start("replicated-cache.py", "-p", port, "--host", "0.0.0.0")
    wait_for(lambda: listening_addresses(port), what="the cache server listening")
    assert listening_addresses(port) == {"0.0.0.0"}


# -- CouchDB with an admin user

@pytest.fixture
def secured_couch(tmp_path):
    """A server whose admin is USER: admin party is over before any actor starts."""
    port = free_port()
    proc = start_server(server_url(port=port, admin=(USER, PASSWORD)), tmp_path / "couchdb",
                        log_file=tmp_path / "couchdb.log")
    yield port
    proc.kill()
    proc.wait()


def test_couchdb_with_credentials_full_ous_anonymous_refused_password_never_shown(env, tmp_path, secured_couch):
    port = secured_couch
    plain = f"http://127.0.0.1:{port}"
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}"
    group = Actors(dict(env, DRAWS_COUCHDB_URL=url), tmp_path)
    outputs = []
    try:
        fleet = Fleet(group, env, Server(url, max_wait=30))   # its actors create the tables
        uid = "uid://X1/X1/Xs1"
        res = group.run("launcher.py", PROG, uid, "PipelineImaging")
        outputs.append(res.stdout + res.stderr)
        assert res.returncode == 0, res.stderr
        fleet.wait_delivered([uid], timeout=120)
        assert_delivered(fleet, uid)

        # Anonymous and wrong-password requests are refused on every table.
        for name in tables.ALL:
            assert requests.get(f"{plain}/{name}/_all_docs", timeout=10).status_code == 401, name
            assert requests.get(f"{plain}/{name}", auth=(USER, "wrong"), timeout=10).status_code == 401
            put = requests.put(f"{plain}/{name}/intruder", json={"x": 1}, timeout=10)
            assert put.status_code == 401, name
            members = requests.get(f"{plain}/{name}/_security", auth=(USER, PASSWORD),
                                   timeout=10).json()["members"]
            if ON_COUCHDB:   # CouchDB 3 makes every new database admin-only itself
                assert members == {"roles": ["_admin"]}, name
            else:            # PouchDB Server leaves it open: the actors restrict it
                assert members["names"] == [USER], name
        assert requests.get(f"{plain}/{tables.STATUS}/_changes", timeout=10).status_code == 401
        anonymous = Server(plain, wait=False)
        with pytest.raises(Exception) as refused:
            StatusTable(anonymous).get(uid)
        assert "401" in str(refused.value)

        # A client without (or with wrong) credentials gets one clear error, no password.
        for bad in (plain, f"http://{USER}:wrong-{PASSWORD}@127.0.0.1:{port}"):
            res = group.run("launcher.py", PROG, "uid://X1/X1/Xs2", env={"DRAWS_COUCHDB_URL": bad})
            outputs.append(res.stdout + res.stderr)
            assert res.returncode == 1 and "401" in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert Server(url).db(tables.STATUS).get_or_none("uid___X1_X1_Xs2") is None

        # The dashboard reads the tables with the credentials and never shows them;
        # a browser must give the same ones to see them.
        dash_port = free_port()
        dash = group.start("dashboard/server.py", "--port", dash_port)
        page = wait_for(lambda: (lambda r: r.text if r.status_code == 200 and uid in r.text.replace("<wbr>", "")
                                 else None)(
            requests.get(f"http://127.0.0.1:{dash_port}/", auth=(USER, PASSWORD), timeout=10)),
            what="the dashboard's overview")
        pages = [page] + [requests.get(f"http://127.0.0.1:{dash_port}{p}", auth=(USER, PASSWORD), timeout=10).text
                          for p in ("/ous/uid___X1_X1_Xs1", "/bus", "/api/overview", "/nonexistent")]
        for p in ("/", "/api/overview", "/api/ous/uid___X1_X1_Xs1", "/events"):
            refused = requests.get(f"http://127.0.0.1:{dash_port}{p}", timeout=10)
            assert refused.status_code == 401 and uid not in refused.text, p
        wrong = Actors(dict(env, DRAWS_COUCHDB_URL=f"http://{USER}:x{PASSWORD}@127.0.0.1:{port}"), tmp_path)
        bad_port = free_port()
        bad_dash = wrong.start("dashboard/server.py", "--port", bad_port, name="dashboard-wrong")
        try:
            pages.append(wait_for(lambda: requests.get(f"http://127.0.0.1:{bad_port}/", timeout=10).text,
                                  what="the dashboard with a wrong password"))
            outputs.append(bad_dash.log())
        finally:
            wrong.stop_all()
        assert dash.alive()
        server_logs = list(tmp_path.glob("couchdb*.log")) + list((tmp_path / "couchdb").glob("*.txt")) \
            + list((tmp_path / "couchdb").glob("*.log"))
        assert server_logs
        for text in pages + outputs + [a.log() for a in group.started] + \
                [p.read_text(errors="replace") for p in server_logs]:
            assert PASSWORD not in text
    except BaseException:
        print(group.logs())
        raise
    finally:
        group.stop_all()


def test_clear_all_dbs_touches_only_the_six_tables(env, tmp_path, secured_couch):
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{secured_couch}"
    server = Server(url, max_wait=30)
    tables.ensure(server)
    StatusTable(server).reset(PROG, "uid://X1/X1/Xc1")
    others = {"pi-data": {"_id": "keep", "x": 1}, "_replicator": {"_id": "keep-rep", "source": "http://127.0.0.1:9/a",
                                                  "target": "http://127.0.0.1:9/b"},
              "msgq-archive": {"_id": "keep", "x": 2}}
    for name, doc in others.items():
        server.db(name).create()
        server.db(name).put(dict(doc))
    design = {name: [r["id"] for r in server.db(name).all_docs()["rows"] if r["id"].startswith("_design/")]
              for name in tables.ALL}
    security = {name: server.request("GET", f"{name}/_security") for name in tables.ALL}

    res = Actors(dict(env, DRAWS_COUCHDB_URL=url), tmp_path).run("clear-all-dbs.py")
    assert res.returncode == 0, res.stderr
    assert PASSWORD not in res.stdout + res.stderr
    for name in tables.ALL:
        assert server.db(name).ids() == [], name
        assert [r["id"] for r in server.db(name).all_docs()["rows"]] == design[name]
        assert server.request("GET", f"{name}/_security") == security[name]
    for name, doc in others.items():
        assert server.db(name).get(doc["_id"])["_id"] == doc["_id"], name
    assert set(server.all_dbs()) >= set(tables.ALL) | set(others)
