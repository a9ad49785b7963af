"""RPC over the bus: replies, errors and timeouts."""

import time

import pytest

from draws import rpc
from draws.bus import Bus
from draws.exceptions import InvalidRequest, RPCTimeout
from support import wait_for


@pytest.fixture
def bus(server):
    b = Bus(server, actor="test")
    yield b
    b.close()


def test_call_gets_the_reply(bus):
    executor = rpc.Executor(bus, "echo", lambda body: {"echo": body}).start()
    try:
        assert rpc.call(bus, "echo", {"x": 1}, timeout=20) == {"echo": {"x": 1}}
        assert rpc.call(bus, "echo", [1, 2], timeout=20) == {"echo": [1, 2]}
    finally:
        executor.stop()
    # Each request was marked handled, and its reply consumed by us (a mark the
    # caller does not wait for).
    def marked():
        docs = [r["doc"] for r in bus.db.all_docs(include_docs="true")["rows"]]
        requests = [d for d in docs if d.get("selector") == "echo"]
        replies = [d for d in docs if d.get("selector") in {r["msgbackID"] for r in requests}]
        return (len(requests) == 2 and all(d["status"] == "done" for d in requests)
                and len(replies) == 2 and all(d["consumed"] and d["status"] == "done" for d in replies))
    wait_for(marked, timeout=20, what="both requests done and both replies consumed")


def test_only_a_request_can_be_answered(bus):
    from draws.receiver import Message
    with pytest.raises(InvalidRequest, match="no msgbackID"):
        Message("id", "sel", {}).respond({"no": "one asked"})


def test_a_rejected_request_gets_an_error_reply_and_is_marked_failed(bus, server):
    def picky(body):
        if body != "ok":
            raise InvalidRequest("only 'ok' is accepted")
        return "fine"
    executor = rpc.Executor(bus, "picky", picky).start()
    try:
        assert rpc.call(bus, "picky", "no", timeout=20) == {"error": "only 'ok' is accepted"}
        assert rpc.call(bus, "picky", "ok", timeout=20) == "fine"  # still serving
    finally:
        executor.stop()
    failed = server.db("msgq").find({"selector": "picky", "status": "failed"})
    assert len(failed) == 1 and "only 'ok' is accepted" in failed[0]["error"]


def test_a_call_nobody_answers_times_out(bus):
    started = time.monotonic()
    with pytest.raises(RPCTimeout, match="no reply from 'nobody'"):
        rpc.call(bus, "nobody", {}, timeout=1.0)
    assert time.monotonic() - started < 10


def test_a_request_without_msgbackid_is_marked_failed(bus, server):
    executor = rpc.Executor(bus, "svc", lambda body: 1).start()
    try:
        (mid,) = bus.send("svc", {"no": "reply address"})
        doc = wait_for(lambda: (lambda d: d if d.get("status") == "failed" else None)(
            server.db("msgq").get(mid)), what="failed mark")
        assert "msgbackID" in doc["error"]
    finally:
        executor.stop()


def test_a_timed_out_request_is_withdrawn_so_no_orphan_reply_appears(bus, server):
    with pytest.raises(RPCTimeout):
        rpc.call(bus, "late", {"x": 1}, timeout=0.5)
    (request,) = server.db("msgq").find({"selector": "late"})
    assert request["consumed"] is True and request["status"] == "failed"
    assert "withdrawn" in request["error"]
    seen = []
    executor = rpc.Executor(bus, "late", lambda body: seen.append(body)).start()
    time.sleep(1.0)
    executor.stop()
    assert seen == []   # the executor that comes late does not run it
