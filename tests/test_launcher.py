"""launcher.py as a real process."""

import pytest

from draws.ous import StatusTable

UID = "uid://X1/X1/Xb0"
PROG = "2015.1.00657.S"


def test_launch_without_recipe(actors, server):
    res = actors.run("launcher.py", PROG, UID)
    assert res.returncode == 0, res.stderr
    doc = StatusTable(server).get(UID)
    assert (doc["state"], doc["substate"], doc["progID"], doc["flags"]) == \
        ("ReadyForProcessing", None, PROG, {})
    assert doc["_id"] == "uid___X1_X1_Xb0"


def test_launch_with_recipe_resets_an_existing_ous(actors, server):
    status = StatusTable(server)
    status.reset(PROG, UID)
    status.set_state(UID, "ProcessingProblem")
    status.set_flag(UID, "PL_PROCESSING_EXECUTIVE", "EU")
    assert actors.run("launcher.py", PROG, UID, "PipelineImaging").returncode == 0
    doc = status.get(UID)
    assert (doc["state"], doc["substate"], doc["flags"]) == ("ReadyForProcessing", "PipelineImaging", {})
    assert [h["state"] for h in doc["history"]] == \
        ["ReadyForProcessing", "ProcessingProblem", "ReadyForProcessing"]


def test_launch_with_executive_sends_to_torque(actors, server):
    assert actors.run("launcher.py", PROG, UID, "PipelineCalibration", "EU").returncode == 0
    doc = StatusTable(server).get(UID)
    assert doc["state"] == "Processing"
    assert doc["flags"] == {"PL_PROCESSING_EXECUTIVE": "EU"}
    (msg,) = server.db("msgq").find({"selector": "pipeline.process.EU"})
    assert msg["body"] == {"progID": PROG, "ousUID": UID, "recipe": "PipelineCalibration",
                           "assignment": doc["assignment"]["id"]}
    assert msg["consumed"] is False
    assert doc["owner"]["message"] == msg["_id"] and doc["outbox"]["sent"] is True


def test_a_mid_life_cycle_ous_is_reset_only_when_forced(actors, server):
    status = StatusTable(server)
    assert actors.run("launcher.py", PROG, UID, "PipelineCalibration", "EU").returncode == 0
    before = status.get(UID)
    again = actors.run("launcher.py", PROG, UID, "PipelineImaging")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert f"{UID} is Processing at EU by launcher@" in again.stderr and "--force" in again.stderr
    assert status.get(UID)["_rev"] == before["_rev"]
    forced = actors.run("launcher.py", "--force", PROG, UID, "PipelineImaging")
    assert forced.returncode == 0, forced.stderr
    assert f"{UID} was Processing at EU by launcher@" in forced.stderr and "interrupting" in forced.stderr
    doc = status.get(UID)
    assert (doc["state"], doc["substate"], doc["flags"]) == ("ReadyForProcessing", "PipelineImaging", {})
    assert "assignment" not in doc and "owner" not in doc
    assert doc["history"][-1]["reason"].startswith("launched again, interrupting Processing")


@pytest.mark.parametrize("args, complaint", [
    (["2015.1", UID], "is not a program id"),
    (["--help-me", UID], "No such option"),
    ([PROG, "uid://X1/X1"], "is not an OUS UID"),
    ([PROG, "uid://X1/X1/<b>x</b>"], "is not an OUS UID"),
    ([PROG, "-rf"], "No such option"),
    ([PROG, UID, "PipelineMagic"], "is not a recipe"),
    ([PROG, UID, "PipelineCalibration", "MARS"], "is not an executive"),
    ([PROG, UID, "ManualCalibration", "EU"], "never processed"),
    ([], "Missing argument"),
])
def test_bad_arguments_are_refused_clearly(actors, server, args, complaint):
    res = actors.run("launcher.py", *args)
    assert res.returncode != 0
    assert complaint in res.stderr
    assert "Traceback" not in res.stderr
    assert StatusTable(server).all() == []
