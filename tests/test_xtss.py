"""XTSS as a real process: every operation and every error."""

import pytest

from draws import rpc
from draws.bus import Bus
from draws.timestamps import timestamp
from draws.exceptions import RemoteError
from draws.ous import Refused, StatusTable
from draws.xtss import XtssClient
from original import OriginalXtss, launch, ous_id
from support import wait_for

UID = "uid://X1/X1/Xb0"


@pytest.fixture
def xtss(actors, server):
    actors.start("xtss.py")
    bus = Bus(server, actor="test")
    StatusTable(server).reset("2015.1.00657.S", UID, "PipelineCalibration")
    yield XtssClient(bus, timeout=30)
    bus.close()


def test_set_state_substate_and_exec(xtss, server):
    status = StatusTable(server)
    assert xtss.ask_set_state(UID, "Processing") == 201
    assert xtss.ask_set_exec(UID, "EU") == 201
    assert xtss.ask_set_substate(UID, "Something") == 201
    doc = status.get(UID)
    assert (doc["state"], doc["substate"], doc["flags"]) == ("Processing", "Something",
                                                             {"PL_PROCESSING_EXECUTIVE": "EU"})
    assert xtss.ask_clear_exec(UID) == 201
    doc = status.get(UID)
    assert doc["flags"] == {}
    assert [h["state"] for h in doc["history"]] == ["ReadyForProcessing", "Processing", "Processing"]


def test_get_ouss_by_state_substate(xtss, server):
    status = StatusTable(server)
    status.reset("2015.1.00657.S", "uid://X1/X1/Xa9", "ManualCalibration")
    status.reset("2015.1.00657.S", "uid://X1/X1/Xa8", None)
    status.reset("2015.1.00657.S", "uid://X1/X1/Xa7", "PipelineImaging")
    found = xtss.ask_ouss("ReadyForProcessing", "^Pipeline")
    assert [d["entityId"] for d in found] == ["uid://X1/X1/Xa7", UID]
    assert [d["entityId"] for d in xtss.ask_ouss("ReadyForProcessing", "^$")] == ["uid://X1/X1/Xa8"]
    assert len(xtss.ask_ouss("ReadyForProcessing", ".*")) == 4
    assert xtss.ask_ouss("Delivered", ".*") == []


@pytest.mark.parametrize("body, reason", [
    ({"operation": "explode", "ousUID": UID}, "unknown operation"),
    ({"ousUID": UID, "value": "x"}, "unknown operation"),
    ({"operation": "set-state", "ousUID": "uid://X9/X9/X9", "value": "Processing"}, "no OUS"),
    ({"operation": "set-state", "ousUID": "not-a-uid", "value": "Processing"}, "not an OUS UID"),
    ({"operation": "set-state", "ousUID": UID}, "needs the field 'value'"),
    ({"operation": "set-state", "value": "Processing"}, "needs the field 'ousUID'"),
    ({"operation": "set-state", "ousUID": UID, "value": "Exploded"}, "not a state"),
    ({"operation": "set-substate", "ousUID": UID, "value": {"x": 1}}, "string or null"),
    ({"operation": "set-exec", "ousUID": UID, "value": ""}, "executive name"),
    ({"operation": "get-ouss-by-state-substate", "state": "Processing", "substate": "("}, "invalid substate"),
    ({"operation": "get-ouss-by-state-substate"}, "needs the field 'state'"),
    ([1, 2, 3], "JSON object"),
    ("set-state", "JSON object"),
    (None, "JSON object"),
])
def test_bad_requests_get_a_clear_error_and_xtss_keeps_serving(xtss, body, reason):
    reply = rpc.call(xtss.bus, "xtss", body, timeout=30)
    assert rpc.is_error(reply) and reason in reply["error"]
    assert xtss.ask_set_state(UID, "Processing") == 201  # still serving


def test_client_raises_remote_error(xtss):
    with pytest.raises(RemoteError, match="no OUS"):
        xtss.ask_set_state("uid://X9/X9/X9", "Processing")


def test_transitions_outside_the_life_cycle_are_refused_unless_lenient(actors, server):
    actors.start("xtss.py")
    status = StatusTable(server)
    status.reset("2015.1.00657.S", UID, "PipelineCalibration")
    bus = Bus(server, actor="test")
    client = XtssClient(bus, timeout=30)
    with pytest.raises(RemoteError, match="not a life-cycle transition .*--lenient"):
        client.ask_set_state(UID, "Delivered")
    assert client.ask_set_state(UID, "Processing") == 201
    assert client.ask_set_state(UID, "Processing") == 201   # the same state again changes nothing
    assert status.get(UID)["state"] == "Processing"
    actors.stop_all()
    actors.start("xtss.py", "--lenient")
    assert client.ask_set_state(UID, "Delivered") == 201
    bus.close()


def test_a_guarded_transition_is_done_once_and_a_second_is_told_who_moved_the_ous(xtss, server):
    status = StatusTable(server)
    body = {"progID": "2015.1.00657.S", "ousUID": UID, "recipe": "PipelineCalibration", "assignment": "a1"}
    assert xtss.transition(UID, "a1", ["ReadyForProcessing"], "Processing", assign="EU",
                           messages=[["pipeline.process.EU", body]]) == 201
    # Asked again (an RPC interrupted by XTSS's end): done once, sent once.
    assert xtss.transition(UID, "a1", ["ReadyForProcessing"], "Processing", assign="EU",
                           messages=[["pipeline.process.EU", body]]) == 201
    with pytest.raises(Refused, match=f"{UID} is Processing at EU by test@.*, not ReadyForProcessing"):
        xtss.transition(UID, "a2", ["ReadyForProcessing"], "Processing", assign="NA")
    doc = status.get(UID)
    assert doc["assignment"]["id"] == "a1" and doc["flags"] == {"PL_PROCESSING_EXECUTIVE": "EU"}
    (sent,) = server.db("msgq").find({"selector": "pipeline.process.EU"})
    assert sent["body"] == body and doc["owner"]["message"] == sent["_id"]
    assert doc["outbox"] == {"step": "a1", "sent": True, "ids": [sent["_id"]]}
    with pytest.raises(Refused, match="a stale run"):
        xtss.transition(UID, "a0.run", ["Processing"], "ReadyForReview", assignment="a0")
    assert [h["state"] for h in status.get(UID)["history"]] == ["ReadyForProcessing", "Processing"]


def test_a_step_asked_again_once_the_ous_moved_on_is_known_as_done(server):
    """A driver's result, done by an XTSS that died before replying, asked again (as the
    interrupted RPC is) once the OUS is already further: done, not refused as stale (the
    driver would then remove the products of the run that was delivered)."""
    status = StatusTable(server)
    status.reset("2015.1.00657.S", UID, "PipelineCalibration")
    status.transition(UID, {"step": "a1", "by": "dra@h:1", "from": ["ReadyForProcessing"], "to": "Processing",
                            "assign": "EU"})
    run = {"step": "a1.run", "by": "pipeline-driver@h:2", "from": ["Processing"], "to": "ReadyForReview",
           "assignment": "a1"}
    status.transition(UID, run)
    status.transition(UID, {"step": "r1", "by": "aqua-qa2@h:3", "from": ["ReadyForReview"], "to": "Reviewing"})
    assert status.transition(UID, run)["state"] == "Reviewing"   # the same asker: done already
    with pytest.raises(Refused, match="not Processing"):            # another driver of that assignment
        status.transition(UID, dict(run, by="pipeline-driver@h:4"))
    assert [h["state"] for h in status.get(UID)["history"]] == \
        ["ReadyForProcessing", "Processing", "ReadyForReview", "Reviewing"]


def test_the_reconciler_sends_what_a_crash_left_in_the_outbox_once(actors, server):
    """XTSS killed between the guarded write and the send: the next one sends it."""
    from draws.owners import outbox
    status = StatusTable(server)
    status.reset("2015.1.00657.S", UID, "PipelineCalibration")
    bus = Bus(server, actor="test")
    body = {"progID": "2015.1.00657.S", "ousUID": UID, "recipe": "PipelineCalibration", "assignment": "a9"}
    docs = outbox(bus, "a9", [("pipeline.process.EU", body)])
    status.transition(UID, {"step": "a9", "from": ["ReadyForProcessing"], "to": "Processing",
                            "assign": "EU", "messages": docs})
    assert server.db("msgq").find({"selector": "pipeline.process.EU"}) == []
    xtss = actors.start("xtss.py")
    # Overdue a lease after it was written; the reconciler looks every third of one.
    sent = wait_for(lambda: server.db("msgq").find({"selector": "pipeline.process.EU"}), timeout=90,
                    what="the request sent by the reconciler")
    assert [m["_id"] for m in sent] == [docs[0]["_id"]]
    wait_for(lambda: status.get(UID)["outbox"].get("sent"), what="the outbox marked sent")
    assert "left unsent by a crash" in xtss.log()
    bus.close()


def written_and_sent_not_yet_marked(server, bus, step):
    """An OUS just moved to Processing by a writer that has sent its request but not yet
    marked its outbox sent: the moment a reconciler's round can fall into."""
    from draws.owners import outbox
    status = StatusTable(server)
    status.reset("2015.1.00657.S", UID, "PipelineCalibration")
    body = {"progID": "2015.1.00657.S", "ousUID": UID, "recipe": "PipelineCalibration", "assignment": step}
    docs = outbox(bus, step, [("pipeline.process.EU", body)])
    status.transition(UID, {"step": step, "from": ["ReadyForProcessing"], "to": "Processing",
                            "assign": "EU", "messages": docs})
    bus.db.bulk([dict(m) for m in docs])
    return status


@pytest.mark.parametrize("grace", [None, 0])
def test_the_reconciler_racing_a_normal_send_does_not_report_a_crash(server, caplog, grace):
    """A young outbox is its writer's to send (left alone); an overdue one already sent is
    marked sent, at most a DEBUG line: no "left unsent by a crash" when nothing crashed."""
    from draws.owners import Reconciler
    bus = Bus(server, actor="test")
    status = written_and_sent_not_yet_marked(server, bus, "a7")
    options = {} if grace is None else {"grace": grace}
    with caplog.at_level("DEBUG", logger="draws.owners"):
        assert Reconciler(status, bus.db, "test", **options).reconcile() == []
    assert not [r for r in caplog.records if r.levelname != "DEBUG"], caplog.text
    assert status.get(UID)["outbox"].get("sent") is (grace == 0)   # young: still its writer's
    assert len(server.db("msgq").find({"selector": "pipeline.process.EU"})) == 1
    bus.close()


def test_a_handwritten_request_in_the_spec_shape_is_served(xtss, server):
    now = timestamp()
    server.db("msgq").put({
        "_id": f"{now}-{'a' * 32}", "creationTimestamp": now, "originIP": "192.0.2.1",
        "selector": "xtss", "consumed": False, "msgbackID": "b" * 32,
        "body": {"operation": "set-state", "ousUID": UID, "value": "Processing"}})
    reply = wait_for(lambda: server.db("msgq").find({"selector": "b" * 32}), what="the reply")
    assert reply[0]["body"] == 201
    assert StatusTable(server).get(UID)["state"] == "Processing"


def test_our_refusals_keep_the_steps_guarded(xtss):
    xtss.transition(UID, "s1", ["ReadyForProcessing"], "Processing", assign="EU")
    with pytest.raises(Refused):   # a lost race
        xtss.transition(UID, "s2", ["ReadyForProcessing"], "Processing", assign="NA")
    with pytest.raises(RemoteError, match="state"):   # a bad request
        xtss.transition(UID, "s3", ["Nowhere"], "Delivered")
    assert xtss.guarded


def test_beside_the_original_xtss_a_step_is_done_with_plain_operations(server, caplog):
    """The original's XTSS (tests/original.py) does not know 'transition': one WARNING, then
    plain operations, the state after the executive and substate, the messages last."""
    launch(server, "2015.1.00657.S", UID)
    double = OriginalXtss(server).start()
    bus = Bus(server, actor="test")
    client = XtssClient(bus, timeout=30)
    body = {"progID": "2015.1.00657.S", "ousUID": UID, "recipe": "PipelineImaging", "assignment": "a1"}
    try:
        with caplog.at_level("WARNING", logger="draws.xtss"):
            client.transition(UID, "a1", ["ReadyForProcessing"], "Processing", assign="EU",
                              substate="PipelineImaging", messages=[["pipeline.process.EU", body]])
            client.transition(UID, "a1.run", ["Processing"], "ReadyForReview", assignment="a1")
            assert client.renew(UID, "r1", 30) == 201
    finally:
        double.stop()
        bus.close()
    assert [(b["operation"], b.get("value")) for b in double.served] == [
        ("transition", None), ("set-exec", "EU"), ("set-substate", "PipelineImaging"),
        ("set-state", "Processing"), ("set-state", "ReadyForReview")]
    assert len([r for r in caplog.records if "lacks guarded transitions" in r.getMessage()]) == 1
    (sent,) = server.db("msgq").find({"selector": "pipeline.process.EU"})
    assert sent["body"] == body
    doc = server.db("status-entities").get(ous_id(UID))
    assert doc["state"] == "ReadyForReview" and doc["flags"] == {"PL_PROCESSING_EXECUTIVE": "EU"}
