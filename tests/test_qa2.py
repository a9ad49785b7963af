"""AQUA/QA2: reports stored from the bus; reviews through piped standard input and --auto."""

import base64

from draws.archive import Reports
from draws.bus import Bus
from draws.ous import EXECUTIVE_FLAG, StatusTable
from draws.products import products_dir
from support import wait_for

PROG = "2015.1.00657.S"
RUN1, RUN2 = "2018-07-24T09:49:20.902", "2018-07-25T10:00:00.001"
QUESTION = "[F]ail, [P]ass, [S]emipass, [C]ancel"


def xml(uid, run):
    return f"<PipelineAquaReport><ProposalCode>{PROG}</ProposalCode><OusId>{uid}</OusId>" \
           f"<ReportDate>{run}</ReportDate></PipelineAquaReport>"


def report(uid, run=RUN1):
    return {"ousUID": uid, "timestamp": run, "source": "EU", "productsDir": products_dir(PROG, run),
            "report": base64.b64encode(xml(uid, run).encode()).decode()}


def processed(status, uid):
    """UID as the Pipeline Driver leaves it after a successful run: ReadyForReview."""
    if status.get_or_none(uid) is None:
        status.reset(PROG, uid, "PipelineImaging")
    status.set_flag(uid, EXECUTIVE_FLAG, "EU")
    status.set_state(uid, "Processing")
    status.set_state(uid, "ReadyForReview")


def messages(server, selector):
    return server.db("msgq").find({"selector": selector})


def test_pass_stores_the_report_then_verifies_and_asks_for_ingestion(server, actors):
    status, uid = StatusTable(server), "uid://X1/X1/Xb0"
    processed(status, uid)
    actors.start("xtss.py")
    qa2 = actors.start("aqua-qa2.py", "--cache-url", "http://jao.example:8001/", stdin="pipe")
    Bus(server, "test").send("pipeline.report.JAO", report(uid))
    wait_for(lambda: Reports(server).latest(uid), 30, what="the report stored")
    stored = Reports(server).latest(uid)
    assert stored["_id"] == "2018-07-24T09_49_20.902.uid___X1_X1_Xb0"   # "_" for ":" (spec §2)
    assert Reports.decode(stored) == xml(uid, RUN1) and stored["source"] == "EU"

    qa2.write(f"\n{uid}\n")
    wait_for(lambda: QUESTION in qa2.log(), 30, what="the QA2 question")
    assert status.get(uid)["state"] == "Reviewing"
    out = qa2.log()
    assert "OUSs ready for review (1):" in out and xml(uid, RUN1) in out
    assert "Weblog: http://jao.example:8001/weblogs/weblog-X1-X1-Xb0-2018-07-24T09:49:20.902/index.html" in out

    qa2.write("maybe\nP\n")
    wait_for(lambda: status.get(uid)["state"] == "DeliveryInProgress", 30, what="DeliveryInProgress")
    states = [h["state"] for h in status.get(uid)["history"]]
    assert states[-3:] == ["Reviewing", "Verified", "DeliveryInProgress"]
    assert "Please answer one of F, P, S, C." in qa2.log()
    [ingest] = messages(server, "ingest.JAO")
    assert ingest["body"] == {"ousUID": uid, "timestamp": RUN1, "productsDir": products_dir(PROG, RUN1)}
    qa2.close_stdin()
    assert qa2.proc.wait(30) == 0


def test_fail_clears_the_recipe_and_cancel_goes_back(server, actors):
    status, failed, cancelled = StatusTable(server), "uid://X1/X1/Xf", "uid://X1/X1/Xc"
    reports = Reports(server)
    for uid in (failed, cancelled):
        processed(status, uid)
        reports.store(uid, RUN1, report(uid)["report"], products_dir(PROG, RUN1), "EU")
    actors.start("xtss.py")
    done = actors.run("aqua-qa2.py", input=f"{failed}\nF\n{cancelled}\nc\n{cancelled}\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(QUESTION) == 3

    ous = status.get(failed)
    assert (ous["state"], ous["substate"], ous["flags"]) == ("ReadyForProcessing", None, {})
    # The third question met the end of input: that review is cancelled too.
    ous = status.get(cancelled)
    assert ous["state"] == "ReadyForReview" and ous["flags"] == {EXECUTIVE_FLAG: "EU"}
    assert [h["state"] for h in ous["history"]][-4:] == ["Reviewing", "ReadyForReview"] * 2
    assert messages(server, "ingest.JAO") == []


def test_a_uid_without_its_report_is_asked_again(server, actors):
    status, uid = StatusTable(server), "uid://X1/X1/Xw"
    processed(status, uid)
    actors.start("xtss.py")
    done = actors.run("aqua-qa2.py", input=f"{uid}\n")
    assert done.returncode == 0
    assert f"the Pipeline report of {uid} has not arrived yet" in done.stdout
    assert status.get(uid)["state"] == "ReadyForReview"


def test_auto_waits_for_the_report_of_the_latest_run_and_refuses_bad_ones(server, actors):
    status, reports, bus = StatusTable(server), Reports(server), Bus(server, "test")
    uid = "uid://X1/X1/Xr"
    processed(status, uid)                     # a first run, failed by QA2 ...
    reports.store(uid, RUN1, report(uid)["report"], products_dir(PROG, RUN1), "EU")
    status.set_state(uid, "Reviewing")
    status.set_state(uid, "ReadyForProcessing")
    processed(status, uid)                     # ... and a second, whose report is still on its way
    actors.start("xtss.py")
    qa2 = actors.start("aqua-qa2.py", "--auto", "S")

    bad = ["not an object", {"ousUID": uid}, dict(report(uid), ousUID="uid://X1/../X2"),
           dict(report(uid), productsDir="../../etc"), dict(report(uid), report="%%% not base64"),
           dict(report(uid), timestamp="yesterday"), dict(report(uid), source="-rf")]
    ids = [i for body in bad for i in bus.send("pipeline.report.JAO", body)]
    msgq = server.db("msgq")
    wait_for(lambda: all(msgq.get(i).get("status") == "failed" for i in ids), 30, what="bad reports refused")
    assert all(msgq.get(i)["error"].startswith("InvalidRequest") for i in ids)
    assert status.get(uid)["state"] == "ReadyForReview"    # run 1's report is not run 2's

    bus.send("pipeline.report.JAO", report(uid, RUN2))
    wait_for(lambda: status.get(uid)["state"] == "DeliveryInProgress", 30, what="DeliveryInProgress")
    [ingest] = messages(server, "ingest.JAO")
    assert ingest["body"]["timestamp"] == RUN2
    assert len(reports.for_ous(uid)) == 2
    wait_for(lambda: "QA2 SemiPass" in qa2.log(), 30, what="the verdict logged")
    assert qa2.alive()
