"""The message bus: order, groups, errors, leases and exactly-once delivery."""

import threading
import time
import uuid

import pytest

from draws.bus import Bus
from draws.receiver import Receiver
from draws.rpc import Reply
from draws.timestamps import timestamp
from draws.exceptions import InvalidRequest
from support import ROOT, wait_for


@pytest.fixture
def bus(server):
    b = Bus(server, actor="test")
    yield b
    b.close()


def collector():
    seen, lock = [], threading.Lock()

    def handle(message):
        with lock:
            seen.append(message)
    return seen, handle


def msgq_docs(server, **selector):
    return server.db("msgq").find(dict({"selector": {"$gt": None}}, **selector))


def test_message_has_the_spec_shape(bus, server):
    (mid,) = bus.send("some.selector", {"a": 1})
    doc = server.db("msgq").get(mid)
    assert doc["selector"] == "some.selector"
    assert doc["consumed"] is False
    assert doc["body"] == {"a": 1}
    # The id is the creation time with "_" for ":" (spec §2), as the original writes it.
    assert mid.startswith(doc["creationTimestamp"].replace(":", "_") + "-") and ":" not in mid
    assert len(mid.split("-")[-1]) == 32
    assert doc["originIP"]
    assert "msgbackID" not in doc


def test_messages_are_handled_oldest_first(bus):
    for i in range(20):
        bus.send("order.test", {"i": i})
    seen, handle = collector()
    receiver = Receiver(bus, "order.test", handle).start()
    wait_for(lambda: len(seen) == 20, what="20 messages")
    receiver.stop()
    assert [m.body["i"] for m in seen] == list(range(20))


def test_messages_sent_while_listening_arrive(bus):
    seen, handle = collector()
    receiver = Receiver(bus, "live.*", handle).start()
    time.sleep(0.3)
    bus.send("live.a", "one")
    bus.send("live.b", "two")
    bus.send("other", "not mine")
    wait_for(lambda: len(seen) == 2, what="2 messages")
    receiver.stop()
    assert sorted(m.body for m in seen) == ["one", "two"]


def test_group_sends_one_copy_per_member(bus, server):
    bus.define_group("state.change.*", ["member.a", "member.b"])
    ids = bus.send("state.change.*", {"x": 1})
    assert len(ids) == 2
    selectors = sorted(server.db("msgq").get(i)["selector"] for i in ids)
    assert selectors == ["member.a", "member.b"]


def test_sending_to_an_undefined_group_is_refused(bus):
    with pytest.raises(InvalidRequest, match="no group"):
        bus.send("nobody.*", {})


@pytest.mark.parametrize("selector", ["", "has space", "a/b", None, 5, "x" * 300])
def test_bad_selectors_are_refused(bus, selector):
    with pytest.raises(InvalidRequest):
        bus.send(selector, {})


def test_a_failing_handler_marks_the_message_failed_and_goes_on(bus, server):
    seen = []

    def handle(message):
        if message.body == "bad":
            raise ValueError("cannot digest this")
        seen.append(message.body)
    receiver = Receiver(bus, "fragile", handle).start()
    (bad,) = bus.send("fragile", "bad")
    bus.send("fragile", "good")
    wait_for(lambda: seen == ["good"], what="the good message")
    doc = wait_for(lambda: (lambda d: d if d.get("status") == "failed" else None)(
        server.db("msgq").get(bad)), what="the failed mark")
    receiver.stop()
    assert doc["consumed"] is True
    assert "ValueError: cannot digest this" in doc["error"]


def test_a_handler_meeting_the_servers_trouble_runs_again_and_a_bad_request_fails(bus, server, monkeypatch):
    from draws import receiver as receiving
    from draws.exceptions import CouchError
    monkeypatch.setattr(receiving, "SERVER_TROUBLE_DELAY", 0.2)
    calls = []

    def handle(message):
        calls.append(message.body)
        if message.body == "overloaded" and calls.count("overloaded") < 3:
            # What Apache CouchDB answers a query it could not finish in time under load.
            raise CouchError("POST /status-entities/_find: 500 timeout: The request could not be "
                             "processed in a reasonable amount of time.", 500)
        if message.body == "malformed":
            raise CouchError("POST /status-entities/_find: 400 bad_request: invalid selector", 400)
    receiver = Receiver(bus, "busy", handle).start()
    try:
        (overloaded,) = bus.send("busy", "overloaded")
        (malformed,) = bus.send("busy", "malformed")
        msgq = server.db("msgq")
        wait_for(lambda: msgq.get(overloaded).get("status") == "done", what="the overloaded one done")
        wait_for(lambda: msgq.get(malformed).get("status") == "failed", what="the malformed one failed")
    finally:
        receiver.stop()
    assert calls.count("overloaded") == 3 and calls.count("malformed") == 1
    assert msgq.get(overloaded)["attempts"] == 1 and "error" not in msgq.get(overloaded)
    assert "400 bad_request" in msgq.get(malformed)["error"]


def test_a_message_written_by_another_program_is_delivered(bus, server):
    seen, handle = collector()
    receiver = Receiver(bus, "handmade", handle).start()
    now = timestamp()
    server.db("msgq").put({"_id": f"{now}-{'0' * 32}", "creationTimestamp": now,
                           "originIP": "10.0.0.1", "selector": "handmade",
                           "consumed": False, "body": [1, 2]})
    wait_for(lambda: seen, what="the handmade message")
    receiver.stop()
    assert seen[0].body == [1, 2]


def worker(actors, couch_url, selector, outfile, mode="record", lease=30):
    return actors.start(str(ROOT / "tests" / "bus_worker.py"), couch_url, selector, outfile,
                        mode, lease, name=f"worker-{mode}")


def handled_ids(path):
    """Ids a bus_worker recorded, one line "<id> <pid>" per handled message."""
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_lease_expires_after_a_receiver_is_killed(bus, server, actors, couch_url, tmp_path):
    hung = tmp_path / "hung.txt"
    dead = worker(actors, couch_url, "leased", hung, mode="hang", lease=2)
    (mid,) = bus.send("leased", {"job": 1})
    wait_for(lambda: hung.exists() and mid in hung.read_text(), what="the claim")
    doc = server.db("msgq").get(mid)
    assert doc["status"] == "claimed" and doc["consumed"] is True
    dead.kill()  # SIGKILL: no chance to release the claim

    done = tmp_path / "done.txt"
    worker(actors, couch_url, "leased", done)
    wait_for(lambda: mid in handled_ids(done), timeout=60, what="redelivery after the lease")
    doc = wait_for(lambda: (lambda d: d if d.get("status") == "done" else None)(
        server.db("msgq").get(mid)), what="done mark")
    assert doc["attempts"] == 2


def test_exactly_once_with_four_receiver_processes(bus, server, actors, couch_url, tmp_path):
    outs = [tmp_path / f"w{i}.txt" for i in range(4)]
    for out in outs:
        worker(actors, couch_url, "work.queue", out)
    time.sleep(1.0)  # let them start listening, so that they compete
    sent = set()
    for i in range(500):
        sent.update(bus.send("work.queue", {"n": i}))

    def all_handled():
        return sum(len(handled_ids(o)) for o in outs) >= 500
    wait_for(all_handled, timeout=180, interval=0.5, what="500 messages handled")
    time.sleep(1.0)  # a duplicate would show up now
    ids = [i for o in outs for i in handled_ids(o)]
    assert len(ids) == 500, "some message was handled twice"
    assert set(ids) == sent
    assert sum(1 for o in outs if handled_ids(o)) >= 2, "one receiver took everything"
    wait_for(lambda: not msgq_docs(server, consumed=False), what="no unconsumed messages")


def test_purge_removes_only_old_handled_messages(bus, server, actors):
    db = server.db("msgq")
    old = "2020-01-01T00:00:00.000"
    for status, consumed in (("done", True), ("failed", True), ("claimed", True), (None, False)):
        doc = {"_id": f"{old}-{uuid.uuid4().hex}", "creationTimestamp": old, "originIP": "x",
               "selector": "s", "consumed": consumed, "body": {}}
        if status:
            doc["status"] = status
        db.put(doc)
    (recent,) = bus.send("s", {})
    db.update(recent, lambda d: d.update(consumed=True, status="done"))
    res = actors.run("draws", "purge", "--older-than", "1d")
    assert res.returncode == 0, res.stderr
    assert "deleted 1 handled message(s)" in res.stderr
    left = {d.get("status") for d in msgq_docs(server)}
    assert left == {"failed", "claimed", None, "done"}   # the recent done one stays
    assert len(msgq_docs(server)) == 4
    assert actors.run("draws", "purge", "--older-than", "soon").returncode != 0


def test_send_all_writes_separate_messages_in_one_request(bus, server):
    ids = bus.send_all([("a.one", {"n": 1}), ("a.two", {"n": 2}), ("a.one", {"n": 3})])
    docs = [server.db("msgq").get(i) for i in ids]
    assert [(d["selector"], d["body"]["n"], d["consumed"]) for d in docs] == \
        [("a.one", 1, False), ("a.two", 2, False), ("a.one", 3, False)]
    stamps = [d["creationTimestamp"] for d in docs]
    assert stamps == sorted(stamps)
    with pytest.raises(InvalidRequest):
        bus.send_all([("a.*", {})])
    with pytest.raises(InvalidRequest):
        bus.send_all([("bad selector!", {})])


def test_a_reply_is_found_even_when_the_feed_has_stopped(bus, server):
    """take() looks directly now and then, so a cut-off feed delays a reply, never loses it."""
    expected = Reply(bus, "reply.sel")
    bus.feed().stop()          # as if cut off for good
    Bus(server, actor="other").send("reply.sel", {"answer": 42})
    got = expected.take(timeout=20, patience=0.5)
    assert got is not None and got.body == {"answer": 42}
    wait_for(lambda: server.db("msgq").get(got.id)["consumed"] is True, what="the reply marked consumed")


# -- a handler slot is freed whatever happens to its message (issue 13)

def test_a_slot_is_freed_when_its_message_is_deleted_or_taken_by_someone_else(bus, server, caplog):
    msgq = server.db("msgq")
    release = threading.Event()
    seen, record = collector()

    def handle(message):
        record(message)
        if message.body.get("hold"):
            release.wait(30)

    receiver = Receiver(bus, "slots", handle, concurrency=2).start()
    try:
        gone, changed = (bus.send("slots", {"hold": True, "n": n})[0] for n in (1, 2))
        wait_for(lambda: len(seen) == 2, what="both messages in hand")
        msgq.delete(gone, msgq.get(gone)["_rev"])
        doc = msgq.get(changed)
        msgq.put(dict(doc, consumedBy="someone@else:1", status="failed", error="cancelled by hand"))
        release.set()
        (after,) = bus.send("slots", {"n": 3})
        wait_for(lambda: msgq.get(after).get("status") == "done", what="a third message handled")
    finally:
        receiver.stop()
    assert msgq.get(changed)["consumedBy"] == "someone@else:1"   # their word stands
    said = caplog.text
    assert f"message {gone} on slots was deleted while" in said
    assert f"message {changed} on slots was changed by someone@else:1 while" in said


def test_a_deferred_message_frees_its_slot_and_comes_back_later(bus, server):
    from draws.receiver import Defer

    msgq = server.db("msgq")
    seen, record = collector()

    def handle(message):
        record(message)
        if message.body.get("late") and message.deferrals < 2:
            raise Defer(0.5, "its files have not arrived")

    receiver = Receiver(bus, "later", handle, concurrency=1).start()
    try:
        (late,) = bus.send("later", {"late": True})
        wait_for(lambda: msgq.get(late).get("deferrals") == 1, what="the message deferred")
        doc = msgq.get(late)
        assert doc["consumed"] is False and doc["status"] == "deferred" and doc["retryAt"]
        assert doc["deferredBecause"] == "its files have not arrived" and "leaseExpires" not in doc
        (other,) = bus.send("later", {"late": False})   # the one slot is free meanwhile
        wait_for(lambda: msgq.get(late).get("status") == "done", what="the deferred message done")
    finally:
        receiver.stop()
    doc = msgq.get(late)
    assert doc["attempts"] == 1 and doc["deferrals"] == 2 and doc["deferredSince"]
    assert msgq.get(other)["status"] == "done"
    assert [m.id for m in seen].count(late) == 3
    assert [m.id for m in seen].index(other) < len(seen) - 1   # not held behind the late one


def test_a_receiver_whose_slots_all_hang_says_so(bus, caplog):
    release = threading.Event()
    receiver = Receiver(bus, "hung", lambda message: release.wait(30), concurrency=1, lease=0.5).start()
    try:
        (stuck,) = bus.send("hung", {"n": 1})
        bus.send("hung", {"n": 2})
        wait_for(lambda: "all 1 handler slot(s) busy" in caplog.text, 30, what="the receiver to say it is stuck")
    finally:
        release.set()
        receiver.stop()
    assert stuck in caplog.text and "1 message(s) wait" in caplog.text
