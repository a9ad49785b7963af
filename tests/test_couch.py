"""The CouchDB client: content type, typed errors, credentials, waiting."""

import logging
import threading
import time

import pytest

from draws.couch import Server, safe_url, split_credentials
from draws.exceptions import Conflict, NotFound, Unavailable
from support import free_port, server_url, start_server


def test_credentials_are_split_off_the_url():
    url, auth = split_credentials("http://admin:s3cr%40t@db.example:5984/")
    assert url == "http://db.example:5984"
    assert auth == ("admin", "s3cr@t")
    assert safe_url("http://u:p@h:1") == "http://h:1"
    assert split_credentials("http://h:1") == ("http://h:1", None)
    assert "s3cr" not in repr(Server("http://admin:s3cret@h:1"))


def test_documents_keep_their_fields_and_errors_are_typed(server):
    db = server.db("msgq")
    doc = db.put({"_id": "x-1", "field": "value"})
    assert db.get("x-1")["field"] == "value"  # PouchDB stores {} without the JSON content type
    with pytest.raises(Conflict):
        db.put({"_id": "x-1", "field": "other"})
    with pytest.raises(NotFound):
        db.get("nope")
    db.delete("x-1", doc["_rev"])


def test_get_many_reads_the_documents_there_in_one_request(server):
    db = server.db("msgq")
    db.put({"_id": "many-1", "n": 1})
    gone = db.put({"_id": "many-2", "n": 2})
    db.delete("many-2", gone["_rev"])
    found = db.get_many(["many-1", "many-2", "many-3"])
    assert list(found) == ["many-1"] and found["many-1"]["n"] == 1
    assert db.get_many([]) == {}
    db.delete("many-1", found["many-1"]["_rev"])


def test_update_retries_on_conflict(server):
    db = server.db("msgq")
    db.put({"_id": "counter", "n": 0})

    def bump():
        for _ in range(10):
            db.update("counter", lambda d: d.__setitem__("n", d["n"] + 1))
    threads = [threading.Thread(target=bump) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.get("counter")["n"] == 30


def test_unreachable_server_fails_fast_when_told_not_to_wait():
    srv = Server(f"http://user:pw@127.0.0.1:{free_port()}", wait=False)
    with pytest.raises(Unavailable) as info:
        srv.all_dbs()
    assert "unreachable" in str(info.value) and "pw" not in str(info.value)


def test_requests_wait_for_the_server_and_log_once(tmp_path, caplog):
    url = server_url()
    srv = Server(url)
    result = {}
    caplog.set_level(logging.WARNING, logger="draws.couch")
    t = threading.Thread(target=lambda: result.setdefault("dbs", srv.all_dbs()))
    t.start()
    time.sleep(1.5)
    assert "dbs" not in result
    proc = start_server(url, tmp_path)
    try:
        t.join(30)
        assert isinstance(result["dbs"], list)
    finally:
        proc.kill()
        proc.wait()
    waits = [r.getMessage() for r in caplog.records if "waiting for CouchDB" in r.getMessage()]
    assert waits == [f"waiting for CouchDB at {safe_url(url)} (connection refused); if none runs there, "
                     "`make server` starts one"]
    said = [r.getMessage() for r in caplog.records]
    assert f"CouchDB at {safe_url(url)} answers" in said      # not "again": it never answered before
    assert not any("answers again" in text for text in said)


def test_update_from_a_remembered_copy_needs_no_read_and_never_loses_a_change(server):
    from draws.recent import Recent
    db, recent = server.db("msgq"), Recent(size=2)
    db.put({"_id": "doc", "n": 0, "log": []})

    def bump(doc):
        doc["n"] += 1
        doc["log"].append(doc["n"])
    db.update("doc", bump, recent=recent)
    assert recent.take("doc")["n"] == 1          # kept after the write ...
    db.update("doc", bump, recent=recent)        # ... (read again after the take)
    # Someone else changes it: our copy is stale, CouchDB refuses its revision.
    other = db.get("doc")
    other["n"] = 100
    db.put(other)
    db.update("doc", bump, recent=recent)
    assert db.get("doc")["n"] == 101 and db.get("doc")["log"] == [1, 2, 101]

    # A change that refuses (or does nothing) on a stale copy is judged again on the real one.
    stale = recent.take("doc")
    recent.keep(dict(stale, n=-5))
    def only_positive(doc):
        if doc["n"] < 0:
            raise ValueError("negative")
        doc["n"] += 1
    assert db.update("doc", only_positive, recent=recent)["n"] == 102


def test_recent_keeps_only_the_newest_documents():
    from draws.recent import Recent
    recent = Recent(size=2)
    for name in ("a", "b", "c"):
        recent.keep({"_id": name, "_rev": "1-x"})
    assert recent.take("a") is None and recent.take("b")["_id"] == "b" and recent.take("c")
