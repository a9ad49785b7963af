"""The embedded server (draws/pouchdb-server.js) answers as Apache CouchDB does
where PouchDB Server 4.2.0 did not: Mango selectors with $or & co. under a
field, and negations, as CouchDB 3.3 reads them (the selector tests run on
either server with the same expectations); once secured, closed to anyone
without valid credentials, and never wedged by a request."""

import json
import socket
import time
import uuid

import pytest
import requests

from draws import dbserver as embedded, tables
from draws.couch import Server
from support import free_port

R, P = "ReadyForProcessing", "Processing"
DOCS = [
    {"_id": "a", "state": R, "substate": None},
    {"_id": "b", "state": R, "substate": ""},
    {"_id": "c", "state": R},
    {"_id": "d", "state": R, "substate": "PipelineCalibration"},
    {"_id": "e", "state": P, "substate": ""},
    {"_id": "f", "state": R, "substate": "x", "flags": {"n": 1}},
    {"_id": "g", "state": R, "substate": "", "flags": {"n": 2}},
]

# (selector, the ids Apache CouchDB 3.3.3 finds: a field-level combination
# means the same combination of that field's conditions at the top level;
# a negation is pushed down to the fields it negates, and a condition on a
# field a document lacks holds only when it is {"$exists": false})
CASES = [
    # the original mockup's AQUA Batch Helper
    ({"state": R, "substate": {"$or": [{"$eq": None}, {"$eq": ""}]}}, "abg"),
    ({"substate": {"$or": [None, ""]}}, "abeg"),                           # bare values: $eq
    ({"state": R, "substate": {"$nor": [None, ""]}}, "df"),                # not c: substate missing
    ({"substate": {"$and": [{"$gt": ""}, {"$regex": "^Pipe"}]}}, "d"),
    ({"state": R, "substate": {"$not": {"$eq": ""}}}, "adf"),
    ({"flags": {"n": {"$or": [1, 2]}}}, "fg"),                            # under a sub-field
    ({"substate": {"$gt": "", "$or": [{"$eq": "x"}, {"$regex": "^P"}]}}, "df"),
    ({"state": {"$or": [R, P]}, "substate": {"$or": [None, ""]}}, "abeg"),   # two $or side by side
    ({"$or": [{"state": P}, {"substate": "x"}], "substate": {"$or": [None, ""]}}, "e"),
    ({"$or": [{"substate": {"$or": [None]}}, {"state": P}]}, "ae"),        # inside a top-level $or
    ({"$and": [{"substate": {"$or": [""]}}, {"flags.n": {"$gt": 1}}]}, "g"),
    ({"state": R, "$or": [{"substate": None}, {"substate": ""}]}, "abg"),  # unchanged forms still work
    ({"state": P}, "e"),
    ({"$or": [{"substate": {"$regex": "^P"}}, {"substate": {"$ne": ""}, "state": P}]}, "d"),   # PouchDB failed
    # negations and $ne hold only where the field is (PouchDB's own held where it is missing)
    ({"substate": {"$ne": ""}}, "adf"),
    ({"$not": {"substate": ""}}, "adf"),
    ({"$nor": [{"state": P}, {"substate": ""}]}, "adf"),
    ({"substate": {"$not": {"$regex": "^P"}}}, "abefg"),
    ({"flags": {"$not": {"n": 1}}}, "g"),
    ({"$not": {"$and": [{"substate": {"$gt": ""}}, {"flags.n": 1}]}}, "abeg"),
    ({"substate": {"$not": {"$gt": "", "$lt": "z"}}}, "abeg"),
    ({"substate": {"$not": {"$ne": ""}}}, "beg"),                          # two negations: none
    ({"$not": {"substate": {"$exists": True, "$eq": ""}}}, "acdf"),        # $exists is negated as such
    ({"$not": {"$or": [{"substate": {"$exists": False}}, {"state": P}]}}, "abdfg"),
    # null is a value for $in and $nin
    ({"substate": {"$in": [None, ""]}}, "abeg"),
    ({"substate": {"$nin": ["", "x"]}}, "ad"),
    ({"substate": {"$not": {"$in": ["", "x"]}}}, "ad"),
]


# One site (database) for the whole file: its tests run in one worker, in turn
# (`make test` runs tests in two workers; see the Makefile).
pytestmark = pytest.mark.xdist_group("test_embedded_server")


@pytest.fixture(scope="module")
def db(couch_url):
    database = Server(couch_url, max_wait=30).db("selectors-test")
    database.create()
    for doc in DOCS:
        if not database.get_or_none(doc["_id"]):
            database.put(dict(doc))
    return database


def found(db, selector):
    return "".join(sorted(doc["_id"] for doc in db.find(selector, fields=["_id"])))


@pytest.mark.parametrize("selector,expected", CASES, ids=[str(i) for i in range(len(CASES))])
def test_combinations_under_a_field_match_as_on_couchdb(db, selector, expected):
    assert found(db, selector) == expected


def combinations(selector):
    """The argument of every $or in SELECTOR (a selector as _explain shows it)."""
    if isinstance(selector, list):
        return [c for item in selector for c in combinations(item)]
    if not isinstance(selector, dict):
        return []
    return [c for key, value in selector.items()
            for c in ([value] if key == "$or" else []) + combinations(value)]


def test_combinations_under_a_field_with_an_index_and_in_explain(db, couch_url):
    db.ensure_index(["state", "substate"], "state-substate")
    assert found(db, CASES[0][0]) == "abg"
    explained = requests.post(f"{couch_url}/{db.name}/_explain", json={"selector": CASES[0][0]}, timeout=10)
    # Both show the $or lifted out of the field (CouchDB within the $and it makes of every selector).
    assert explained.status_code == 200
    assert [{"substate": {"$eq": None}}, {"substate": {"$eq": ""}}] in combinations(explained.json()["selector"])


def test_a_combination_that_is_not_a_list_is_refused_as_on_couchdb(db, couch_url):
    for op in ("$or", "$and", "$nor"):
        resp = requests.post(f"{couch_url}/{db.name}/_find",
                             json={"selector": {"substate": {op: {"$eq": ""}}}}, timeout=10)
        assert resp.status_code == 400 and op in resp.json()["reason"], resp.text


# -- validation: the embedded server reads the design documents once for a whole bulk

def test_every_document_of_a_bulk_is_validated_and_a_new_rule_judges_the_next_bulk(couch_url):
    db = Server(couch_url, max_wait=30).db(f"validation-test-{uuid.uuid4().hex[:8]}")
    assert db.create()

    def refused(prefix, rule):
        results = db.bulk([{"_id": f"{prefix}{n}", "n": n} for n in range(200)])
        if rule:
            return sorted(int(r["id"][len(prefix):]) for r in results if r.get("error") == "forbidden")
        assert all(r.get("ok") for r in results), results
        return []

    assert refused("a", None) == []
    rules = db.put({"_id": "_design/rules", "validate_doc_update":
                    "function (doc) { if (doc.n % 2) { throw({forbidden: 'odd'}); } }"})
    assert refused("b", "odd") == list(range(1, 200, 2))
    db.put(dict(rules, validate_doc_update="function (doc) { if (doc.n >= 150) { throw({forbidden: 'big'}); } }"))
    assert refused("c", "big") == list(range(150, 200))
    assert db.get_or_none("b3") is None and db.get("b4")["n"] == 4 and db.get("c149")["n"] == 149


def test_a_query_through_an_index_finds_each_document_as_it_is_now(couch_url):
    """The embedded server fetches the documents an index found one by one (by id):
    each as last written, a deleted one not at all, fields and attachments as CouchDB gives them."""
    db = Server(couch_url, max_wait=30).db(f"fetch-test-{uuid.uuid4().hex[:8]}")
    assert db.create()
    db.ensure_index(["kind"], "kind")
    db.bulk([{"_id": f"d{n:02}", "kind": "a", "n": n} for n in range(40)] + [{"_id": "other", "kind": "b"}])
    db.put({"_id": "with-file", "kind": "a", "n": 99,
            "_attachments": {"f": {"content_type": "text/plain", "data": "aGVsbG8="}}})
    found = db.find({"kind": "a"})
    assert len(found) == 41 and all(doc["_rev"] == db.get(doc["_id"])["_rev"] for doc in found)
    assert found[-1]["_attachments"]["f"]["stub"] is True
    db.put(dict(db.get("d03"), n=300))
    db.delete("d04", db.get("d04")["_rev"])
    found = {doc["_id"]: doc for doc in db.find({"kind": "a"}, fields=["_id", "n"])}
    assert len(found) == 40 and "d04" not in found and found["d03"] == {"_id": "d03", "n": 300}


# -- secured: an admin, and _security on every table

ADMIN, PASSWORD = "drawsadmin", "Adm1n-pw"
MEMBER, MEMBER_PASSWORD = "member", "M3mber-pw"


@pytest.fixture
def secured(tmp_path):
    """A fresh embedded server made secure as RELIABILITY.md says: (plain URL, admin URL)."""
    port = free_port()
    plain, admin = f"http://127.0.0.1:{port}", f"http://{ADMIN}:{PASSWORD}@127.0.0.1:{port}"
    proc = embedded.spawn(plain, tmp_path / "couchdb", in_memory=True, log_file=tmp_path / "couchdb.log")
    try:
        requests.put(f"{plain}/_config/admins/{ADMIN}", data=json.dumps(PASSWORD), timeout=10).raise_for_status()
        server = Server(admin, max_wait=30)
        tables.ensure(server)   # gives every table its _security
        server.db(tables.NGAS).put({"_id": "keep", "fileId": "x"})
        server.request("PUT", f"_users/org.couchdb.user:{MEMBER}", body={
            "name": MEMBER, "password": MEMBER_PASSWORD, "roles": [], "type": "user"})
        server.request("PUT", f"{tables.NGAS}/_security", body={
            "admins": {"names": [], "roles": []}, "members": {"names": [ADMIN, MEMBER], "roles": ["_admin"]}})
        yield plain, admin
    finally:
        proc.kill()
        proc.wait()


def table_requests(table):
    query = {"selector": {"_id": {"$gt": None}}}
    return [("GET", table, None), ("GET", f"{table}/_all_docs", None), ("POST", f"{table}/_all_docs", {"keys": ["keep"]}),
            ("POST", f"{table}/_find", query), ("POST", f"{table}/_explain", query),
            ("POST", f"{table}/_bulk_get", {"docs": [{"id": "keep"}]}),
            ("POST", f"{table}/_index", {"index": {"fields": ["x"]}}), ("GET", f"{table}/_index", None),
            ("DELETE", f"{table}/_index/_design/x/json/x", None),
            ("GET", f"{table}/_changes", None), ("POST", f"{table}/_changes", {}),
            ("GET", f"{table}/keep", None), ("PUT", f"{table}/intruder", {"x": 1}), ("POST", table, {"x": 1}),
            ("POST", f"{table}/_bulk_docs", {"docs": [{"x": 1}]}), ("POST", f"{table}/_revs_diff", {"keep": ["1-a"]}),
            ("GET", f"{table}/_security", None), ("PUT", f"{table}/_security", {"members": {"names": []}}),
            ("POST", f"{table}/_compact", {}), ("POST", f"{table}/_view_cleanup", {}),
            ("GET", f"{table}/_design/x/_view/y", None), ("DELETE", table, None)]


SERVER_REQUESTS = [
    ("GET", "_all_dbs", None), ("GET", "_utils", None), ("GET", "_utils/", None), ("GET", "_config", None),
    ("PUT", "_config/admins/intruder", "pw"), ("GET", "_users/_all_docs", None),
    ("PUT", f"_users/org.couchdb.user:intruder", {"name": "intruder", "password": "x", "roles": [], "type": "user"}),
    ("PUT", "newdb", None), ("DELETE", "_users", None), ("DELETE", "_replicator", None),
    ("POST", "_replicate", {"source": "ngas", "target": "copy"}), ("GET", "_active_tasks", None),
    ("GET", "_uuids", None), ("GET", "_session", None), ("GET", "_stats", None), ("GET", "_log", None),
    ("GET", "_db_updates", None), ("GET", "nonexistent", None), ("GET", "nonexistent/doc", None),
]


def send(base, method, path, body, auth=None, **kw):
    data = None if body is None else json.dumps(body)
    return requests.request(method, f"{base}/{path}", data=data, auth=auth, timeout=10,
                            headers={"Content-Type": "application/json"}, **kw)


def raw(port, payload):
    """Send raw bytes; return what came back before the server closed or 5 s passed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        try:
            return sock.recv(1000)
        except socket.timeout:
            return b""


def assert_answers_quickly(admin):
    """Authenticated requests answer, each within 1 s."""
    server = Server(admin, wait=False, timeout=1)
    for name in tables.ALL:
        server.db(name).info()
        server.db(name).find({"_id": {"$gt": None}}, limit=1)
    assert server.db(tables.NGAS).get("keep")["fileId"] == "x"
    server.db(tables.MSGQ).put({"_id": f"probe-{time.monotonic_ns()}"})
    assert set(server.all_dbs()) >= set(tables.ALL)


def test_secured_server_refuses_anything_without_valid_credentials(secured):
    plain, admin = secured
    everything = [r for table in tables.ALL for r in table_requests(table)] + SERVER_REQUESTS
    for auth in (None, (ADMIN, "wrong"), ("nobody", PASSWORD)):
        for method, path, body in everything:
            resp = send(plain, method, path, body, auth=auth)
            assert resp.status_code == 401, (auth, method, path, resp.status_code, resp.text[:200])
            assert "keep" not in resp.text and '"fileId"' not in resp.text
    assert requests.get(plain, timeout=10).status_code == 200          # only "is it up?" is open
    assert requests.get(plain, auth=(ADMIN, "wrong"), timeout=10).status_code == 401
    assert requests.post(f"{plain}/_session", json={"name": ADMIN, "password": "wrong"},
                         timeout=10).status_code == 401
    login = requests.post(f"{plain}/_session", json={"name": ADMIN, "password": PASSWORD}, timeout=10)
    assert login.status_code == 200 and requests.get(
        f"{plain}/{tables.NGAS}/keep", cookies=login.cookies, timeout=10).status_code == 200
    assert_answers_quickly(admin)
    server = Server(admin)
    assert set(tables.ALL) <= set(server.all_dbs()) and "newdb" not in server.all_dbs()
    assert "intruder" not in server.request("GET", "_config/admins")
    for name in tables.ALL:
        assert not [i for i in server.db(name).ids() if i not in ("keep",) and not i.startswith("probe-")]


def test_no_request_wedges_the_secured_server(secured):
    plain, admin = secured
    port = int(plain.rsplit(":", 1)[1])
    member = (MEMBER, MEMBER_PASSWORD)
    # A refused deletion (anonymous, then by a member who is not an admin) used to wedge
    # every later request; a member's database creation was never answered.
    for auth in (None, member):
        assert send(plain, "DELETE", tables.NGAS, None, auth=auth).status_code == 401
        assert_answers_quickly(admin)
    assert send(plain, "PUT", "newdb", None, auth=member).status_code == 401
    assert send(plain, "GET", f"{tables.NGAS}/keep", None, auth=member).status_code == 200
    send(plain, "DELETE", "nonexistent", None, auth=(ADMIN, PASSWORD))   # PouchDB Server: 200
    malformed = [
        ("POST", f"{tables.NGAS}/_find", "{not json"), ("POST", f"{tables.NGAS}/_bulk_docs", "[1, 2"),
        ("POST", f"{tables.NGAS}/_index", '{"index": 5}'), ("POST", f"{tables.NGAS}/_find", '{"selector": 5}'),
        ("POST", f"{tables.NGAS}/_bulk_get", '{"docs": "x"}'), ("PUT", f"{tables.NGAS}/_security", '"x"'),
        ("PUT", f"{tables.NGAS}/doc", "\xff\xfe"), ("DELETE", f"{tables.NGAS}?rev=1-x", ""),
        ("GET", f"{tables.NGAS}/_changes?feed=longpoll&since=garbage&timeout=500", None),
        ("POST", f"{tables.NGAS}/_changes?filter=_selector", '{"selector": {}}'),
        ("PATCH", "", None), ("GET", "%00", None), ("GET", "_design/../../etc/passwd", None),
        ("COPY", f"{tables.NGAS}/keep", None), ("GET", "x" * 5000, None),
    ]
    for auth in (None, (ADMIN, PASSWORD)):
        for method, path, data in malformed:
            try:
                resp = requests.request(method, f"{plain}/{path}", data=data, auth=auth, timeout=10,
                                        headers={"Content-Type": "application/json"})
            except (requests.ReadTimeout, requests.ConnectionError):
                assert "longpoll" in path   # PouchDB Server keeps a long poll open: it must wedge nothing else
                continue
            if auth is None:
                assert resp.status_code == 401, (method, path, resp.status_code)
    for headers in ({"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"},
                    {"Authorization": "Basic " + "eA==" * 2000}, {"Cookie": "AuthSession=garbage"}):
        assert requests.get(f"{plain}/{tables.NGAS}", headers=headers, timeout=10).status_code == 401
    for payload in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{",
                    b"POST /ngas/_find HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"):   # the start of a TLS hello
        raw(port, payload)
    assert_answers_quickly(admin)
    assert Server(admin).db(tables.NGAS).get("keep")
