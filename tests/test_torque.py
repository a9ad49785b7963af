"""Torque/Maui: bounded concurrency, nothing lost, bad requests refused, drivers die with it."""

import os
import signal
from pathlib import Path

from draws.bus import Bus
from draws.timestamps import parse_timestamp
from draws.ous import EXECUTIVE_FLAG, StatusTable
from support import wait_for

PROGID, RECIPE = "2015.1.00657.S", "PipelineImaging"


def assign(server, uid, executive="JAO"):
    status = StatusTable(server)
    status.reset(PROGID, uid, RECIPE)
    status.set_state(uid, "Processing")
    status.set_flag(uid, EXECUTIVE_FLAG, executive)
    return status


def handled(server, mid):
    doc = server.db("msgq").get(mid)
    return doc if doc.get("status") in ("done", "failed") else None


def test_at_most_n_drivers_at_once_and_none_lost(env, server, actors):
    actors.start("xtss.py")
    bus = Bus(server, actor="test")
    bad = [bus.send("pipeline.process.JAO", "hello")[0],
           bus.send("pipeline.process.JAO", {"progID": PROGID, "ousUID": "-rf", "recipe": RECIPE})[0],
           bus.send("pipeline.process.JAO", {"progID": PROGID, "ousUID": "uid://X1/X1/X9"})[0]]
    uids = [f"uid://X1/X1/Xa{i}" for i in range(4)]
    status = None
    for uid in uids:
        status = assign(server, uid)
    good = [bus.send("pipeline.process.JAO", {"progID": PROGID, "ousUID": uid, "recipe": RECIPE})[0]
            for uid in uids]
    # Each Pipeline takes 0.45-1.2 s, so the runs overlap if Torque/Maui lets them.
    torque = actors.start("torque-maui.py", "-x", 2, env={"DRAWS_DELAY_SCALE": "0.15"})

    docs = [wait_for(lambda: handled(server, mid), 60, what=f"request {mid} handled") for mid in good]
    assert [d["status"] for d in docs] == ["done"] * 4
    assert [status.get(uid)["state"] for uid in uids] == ["ReadyForReview"] * 4
    reasons = [wait_for(lambda: handled(server, mid), 30, what="bad request handled") for mid in bad]
    assert [d["status"] for d in reasons] == ["failed"] * 3
    assert "a JSON object" in reasons[0]["error"]
    assert "'-rf' is not an OUS UID" in reasons[1]["error"]
    assert "needs recipe" in reasons[2]["error"]

    intervals = [(parse_timestamp(d["consumedAt"]), parse_timestamp(d["handledAt"])) for d in docs]
    running = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    assert running == 2, intervals
    assert torque.alive()


def session_processes(sid):
    """Live (not zombie) processes of session SID: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue   # it ended while we looked
    return found


def test_killing_torque_kills_its_drivers_and_pipelines(env, server, actors):
    actors.start("xtss.py")
    uid = "uid://X1/X1/Xk1"
    assign(server, uid)
    Bus(server, actor="test").send("pipeline.process.JAO", {"progID": PROGID, "ousUID": uid, "recipe": RECIPE})
    torque = actors.start("torque-maui.py", env={"DRAWS_DELAY_SCALE": "30"})   # a Pipeline of minutes

    def children():
        procs = session_processes(torque.pid)
        kinds = {"draws.actors.pipeline_driver" if "draws.actors.pipeline_driver" in c else "draws.actors.pipeline"
                 for p, c in procs.items() if p != torque.pid and "-m draws.actors.pipeline" in c}
        return kinds == {"draws.actors.pipeline_driver", "draws.actors.pipeline"} and procs

    wait_for(children, 30, what="a Pipeline Driver and its Pipeline")
    os.kill(torque.pid, signal.SIGKILL)        # Torque/Maui alone, not its process group
    try:
        wait_for(lambda: not session_processes(torque.pid), 15, what="its driver and Pipeline to die")
    finally:
        for pid in session_processes(torque.pid):   # leave no orphan behind if they did not
            os.kill(pid, signal.SIGKILL)
    assert StatusTable(server).get(uid)["state"] == "Processing"   # for a redelivery to finish


def test_a_driver_killed_after_xtss_took_its_result_leaves_its_request_done(env, server, actors):
    """Killed between asking XTSS for ReadyForReview and hearing back: its run stands,
    so its request is done, not failed (a failed request beside a reviewed run would
    say two things)."""
    uid = "uid://X1/X1/Xk2"
    torque = actors.start("torque-maui.py")
    assert actors.run("launcher.py", PROGID, uid, RECIPE, "JAO").returncode == 0
    msgq = server.db("msgq")
    # No XTSS yet: the driver's request for ReadyForReview waits in msgq.
    (request,) = wait_for(lambda: msgq.find({"consumed": False, "selector": "xtss", "body.ousUID": uid}),
                          60, what="the driver's request to XTSS")
    os.kill(int(request["sentBy"].rsplit(":", 1)[1]), signal.SIGKILL)
    actors.start("xtss.py")
    (process,) = msgq.find({"selector": "pipeline.process.JAO", "body.ousUID": uid})
    done = wait_for(lambda: handled(server, process["_id"]), 90, what="the Pipeline request handled")
    assert done["status"] == "done", done.get("error")
    assert StatusTable(server).get(uid)["state"] == "ReadyForReview"
    assert "status -9 after XTSS recorded its run" in torque.log()
    assert torque.alive()
