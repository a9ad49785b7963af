"""AQUA Batch Helper: recipes for OUSs that lack one, set through XTSS."""

from draws.ous import RECIPES, StatusTable
from support import wait_for

PROG = "2015.1.00657.S"


def test_gives_recipes_at_start_and_to_new_ouss(server, actors):
    status = StatusTable(server)
    waiting = [f"uid://X1/X1/Xa{i}" for i in range(6)]
    for uid in waiting:
        status.reset(PROG, uid)
    status.reset(PROG, "uid://X1/X1/Xkept", "PipelineImaging")
    status.reset(PROG, "uid://X1/X1/Xlater")
    status.set_state("uid://X1/X1/Xlater", "Processing")   # not ReadyForProcessing: left alone

    actors.start("xtss.py")
    helper = actors.start("aqua-batch-helper.py")
    wait_for(lambda: all(status.get(u)["substate"] in RECIPES for u in waiting), 30,
             what="recipes for the OUSs present at start")

    status.reset(PROG, "uid://X1/X1/Xnew")          # arrives later: a change wakes the helper
    status.set_state("uid://X1/X1/Xlater", "ReadyForProcessing")
    wait_for(lambda: status.get("uid://X1/X1/Xnew")["substate"] in RECIPES, 30, what="recipe of a new OUS")
    wait_for(lambda: status.get("uid://X1/X1/Xlater")["substate"] in RECIPES, 30,
             what="recipe of an OUS back in ReadyForProcessing")

    assert status.get("uid://X1/X1/Xkept")["substate"] == "PipelineImaging"
    assert all(status.get(u)["state"] == "ReadyForProcessing" for u in waiting)
    # The helper logs each recipe it gives (through XTSS): one line per OUS, none twice.
    wait_for(lambda: helper.log().count("recipe ") == 8, 30, what="8 recipes logged")
    assert "trying again" not in helper.log()


def test_seed_makes_the_choices_repeatable(server, actors):
    status = StatusTable(server)
    uids = [f"uid://X2/X2/Xb{i}" for i in range(12)]

    def recipes():
        for uid in uids:
            status.reset(PROG, uid)
        helper = actors.start("aqua-batch-helper.py")
        wait_for(lambda: all(status.get(u)["substate"] for u in uids), 30, what="12 recipes")
        helper.kill()
        return [status.get(u)["substate"] for u in uids]

    actors.start("xtss.py")
    first = recipes()
    assert recipes() == first
    assert len(set(first)) > 1
