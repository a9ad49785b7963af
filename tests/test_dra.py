"""DRA: the interactive prompt through piped standard input, and --auto."""

from draws.ous import EXECUTIVE_FLAG, StatusTable
from support import wait_for

PROG = "2015.1.00657.S"
A, MANUAL, BARE, LATE = "uid://X1/X1/Xa", "uid://X1/X1/Xm", "uid://X1/X1/Xn", "uid://X1/X1/Xl"


def sent(server, selector):
    return [m["body"] for m in server.db("msgq").find({"selector": selector})]


def test_prompt_lists_refreshes_rejects_and_assigns(server, actors):
    status = StatusTable(server)
    status.reset(PROG, A, "PipelineImaging")
    status.reset(PROG, MANUAL, "ManualCalibration")
    status.reset(PROG, BARE)
    actors.start("xtss.py")
    dra = actors.start("dra.py", "-a", "EU", stdin="pipe")

    wait_for(lambda: "Enter a UID" in dra.log(), 30, what="the first prompt")
    first = dra.log()
    assert "OUSs ready for Pipeline processing (1):" in first
    assert f"{A}  {PROG}  PipelineImaging" in first
    assert MANUAL not in first and BARE not in first

    status.reset("2016.1.00001.S", LATE, "PipelineCalibration")
    dra.write("\n")                                   # empty line: the list again, now with LATE
    wait_for(lambda: "OUSs ready for Pipeline processing (2):" in dra.log(), 30, what="a refreshed list")
    assert f"{LATE}  2016.1.00001.S  PipelineCalibration" in dra.log()

    dra.write(f"{MANUAL}\nuid:/bad\n{A}\n")
    wait_for(lambda: status.get(A)["state"] == "Processing", 30, what=f"{A} Processing")
    dra.close_stdin()
    assert dra.proc.wait(30) == 0
    out = dra.log()
    assert f"{MANUAL} is not in the list" in out
    assert "'uid:/bad' is not an OUS UID" in out
    assert f"{A} is Processing at EU." in out

    assert status.get(A)["flags"] == {EXECUTIVE_FLAG: "EU"}
    assert status.get(LATE)["state"] == "ReadyForProcessing"
    # The request carries the assignment's id (beyond the original's body).
    assert sent(server, "pipeline.process.EU") == [
        {"progID": PROG, "ousUID": A, "recipe": "PipelineImaging",
         "assignment": status.get(A)["assignment"]["id"]}]


def test_end_of_input_at_once_exits_zero(server, actors):
    actors.start("xtss.py")
    done = actors.run("dra.py", input="")
    assert done.returncode == 0, done.stderr
    assert "OUSs ready for Pipeline processing: none at the moment." in done.stdout
    assert "assigning OUSs to JAO" in done.stdout   # -a defaults to DRAWS_LOCATION


def test_unknown_location_is_refused(server, actors):
    done = actors.run("dra.py", "-a", "MARS", input="")
    assert done.returncode == 1
    assert "'MARS' is not a location" in done.stderr


def test_no_location_says_what_to_do(server, actors):
    done = actors.run("dra.py", input="", env={"DRAWS_LOCATION": ""})
    assert done.returncode == 1
    assert "use -a LOCATION (one of JAO, EA, EU, NA) or set DRAWS_LOCATION" in done.stderr
    assert "None" not in done.stderr


def test_auto_assigns_every_pipeline_ous_as_it_appears(server, actors):
    status = StatusTable(server)
    status.reset(PROG, A, "PipelineImaging")
    status.reset(PROG, MANUAL, "ManualCalibration")
    actors.start("xtss.py")
    actors.start("dra.py", "--auto", "-a", "NA")
    wait_for(lambda: status.get(A)["state"] == "Processing", 30, what=f"{A} Processing")

    later = [f"uid://X2/X2/Xc{i}" for i in range(5)]
    for uid in later:
        status.reset(PROG, uid, "PipelineCalAndImg")
    wait_for(lambda: all(status.get(u)["state"] == "Processing" for u in later), 30,
             what="OUSs launched later Processing")

    assert all(status.get(u)["flags"] == {EXECUTIVE_FLAG: "NA"} for u in later + [A])
    wait_for(lambda: sorted(b["ousUID"] for b in sent(server, "pipeline.process.NA")) == sorted(later + [A]),
             30, what="6 pipeline.process.NA messages")
    assert status.get(MANUAL)["state"] == "ReadyForProcessing"
