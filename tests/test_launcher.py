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
    assert msg["body"] == {"progID": PROG, "ousUID": UID, "recipe": "PipelineCalibration"}
    assert msg["consumed"] is False


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
