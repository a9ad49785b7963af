"""Resources and the server (issue 13, item 3), each fault on real processes.

* a cache or the Pipeline's working folder out of space: a real 2 MB tmpfs
  mounted for the test (we are root), filled to the last byte;
* a server that lost its data: a PouchDB Server of the test's own, killed,
  its folder wiped, started again;
* claimed requests deleted from msgq while their drivers run.

Whatever happens, the OUS ends ProcessingProblem with a reason a person
understands or goes on, no actor dies or stops taking work, and nobody has
to restart anything.
"""

import shutil
import signal
from pathlib import Path

from draws import tables
from draws.ous import StatusTable
from support import fill, small_filesystem, start_server, wait_for
from test_faults import Fleet, own_couch, own_site  # noqa: F401 (fixture)
from test_lifecycle import PROG, assert_delivered

RECIPE = "PipelineCalibration"


def requests_for(server, uid, selector="pipeline.process.EU"):
    return [m for m in server.db(tables.MSGQ).find({"selector": selector})
            if isinstance(m.get("body"), dict) and m["body"].get("ousUID") == uid]


def problem(status, uid):
    """The reason an OUS in ProcessingProblem gives (None while it is elsewhere)."""
    doc = status.get(uid)
    return doc.get("problem") if doc["state"] == "ProcessingProblem" else None


def hidden_leftovers(folder):
    return [p for p in Path(folder).rglob(".*") if ".part" in p.name]


# -- out of space where the Pipeline Driver writes

def eu_processing(actors, env, **more_env):
    """XTSS and an EU Torque/Maui: enough to run Pipelines launched with executive EU."""
    actors.start("xtss.py")
    return actors.start("torque-maui.py", env=dict(
        more_env, DRAWS_LOCATION="EU", DRAWS_LOCAL_CACHE=env["DRAWS_EU_CACHE"]))


def launch(actors, uid, *args):
    res = actors.run("launcher.py", PROG, uid, RECIPE, *args)
    assert res.returncode == 0, res.stderr


def test_the_eu_cache_full_puts_the_ous_in_processing_problem_and_a_later_run_works(
        actors, env, server):
    status = StatusTable(server)
    uid = "uid://X1/X1/Xfull"
    with small_filesystem(env["DRAWS_EU_CACHE"]) as eu_cache:
        (eu_cache / "weblogs").mkdir()
        filler = fill(eu_cache)
        torque = eu_processing(actors, env)
        launch(actors, uid, "EU")
        reason = wait_for(lambda: problem(status, uid), 120, what=f"{uid} in ProcessingProblem")
        assert f"no space left in the EU cache at {eu_cache}" in reason
        (request,) = wait_for(lambda: [m for m in requests_for(server, uid) if m.get("status") == "failed"],
                              30, what="the request failed")
        assert "no space left in the EU cache" in request["error"]
        assert "Traceback" not in torque.log()
        assert not hidden_leftovers(eu_cache)   # nothing half-copied stays, taking space

        filler.unlink()
        launch(actors, uid, "EU")   # the launcher run again: ProcessingProblem's way out
        wait_for(lambda: status.get(uid)["state"] == "ReadyForReview", 120, what="the second run")
        assert len(list(eu_cache.glob(f"{PROG}_*"))) == 1 and torque.alive()


def test_no_space_in_the_pipelines_working_folder_is_a_processing_problem(actors, env, server, tmp_path):
    status = StatusTable(server)
    uid = "uid://X1/X1/Xwork"
    with small_filesystem(tmp_path / "scratch") as scratch:
        filler = fill(scratch, leave=8192)   # room for a folder, not for the products
        torque = eu_processing(actors, env, TMPDIR=str(scratch))   # where the run's folder is made
        launch(actors, uid, "EU")
        reason = wait_for(lambda: problem(status, uid), 120, what=f"{uid} in ProcessingProblem")
        assert "no space left" in reason and str(scratch) in reason
        assert "Traceback" not in torque.log()
        filler.unlink()
        launch(actors, uid, "EU")
        wait_for(lambda: status.get(uid)["state"] == "ReadyForReview", 120, what="the second run")
        assert torque.alive()


# -- out of space where the products are replicated to

def test_the_jao_cache_full_ends_in_processing_problem_holding_no_other_ous(actors, env, server):
    with small_filesystem(env["DRAWS_JAO_CACHE"]) as jao_cache:
        (jao_cache / "weblogs").mkdir()
        filler = fill(jao_cache)
        fleet = Fleet(actors, env, server)
        stuck = [f"uid://X1/X1/Xj{i}" for i in range(2)]   # as many as the ingestor has workers
        for uid in stuck:
            fleet.status.reset(PROG, uid, RECIPE)
        try:
            reasons = [wait_for(lambda: problem(fleet.status, uid), 120, interval=0.5,
                                what=f"{uid} in ProcessingProblem") for uid in stuck]
            for reason in reasons:
                assert f"no space left in the JAO cache at {jao_cache}" in reason, reason
            failed = [m for m in fleet.messages(status="failed") if m["selector"] == "cached.JAO"]
            assert failed and all("no space left in the JAO cache" in m["error"] for m in failed)

            filler.unlink()
            later = [f"uid://X1/X1/Xn{i}" for i in range(3)]
            for uid in stuck + later:
                fleet.status.reset(PROG, uid, RECIPE)   # the stuck ones: the launcher run again
            fleet.wait_delivered(stuck + later, timeout=180)
            for uid in later:
                assert_delivered(fleet, uid)
            assert all(a.alive() for a in fleet.procs.values())
            assert "Traceback" not in fleet.procs["cache-jao"].log()
        except BaseException:
            print(fleet.logs())
            raise


# -- the server lost its data

def test_a_server_that_lost_its_data_is_noticed_and_the_site_serves_again(env, tmp_path, own_couch):  # noqa: F811
    group, server = own_site(env, tmp_path, own_couch["url"])
    try:
        fleet = Fleet(group, env, server)
        before = [f"uid://X1/X1/Xb{i}" for i in range(2)]
        for uid in before:
            fleet.status.reset(PROG, uid, RECIPE)
        fleet.wait_delivered(before, timeout=120)
        pids = fleet.pids()

        own_couch["proc"].send_signal(signal.SIGKILL)
        own_couch["proc"].wait()
        shutil.rmtree(own_couch["data"])   # every table gone, every sequence back to 0
        own_couch["proc"] = start_server(own_couch["url"], own_couch["data"], log_file=own_couch["log"],
                                         in_memory=False)

        # Nobody but the actors creates the tables now.
        wait_for(lambda: all(server.db(name).exists() for name in tables.ALL), 60,
                 what="the tables recreated by the actors")
        wait_for(lambda: all("lost its data" in a.log() for a in fleet.procs.values()), 60,
                 what="every actor to say the server lost its data (not yet: " + ", ".join(
                     n for n, a in fleet.procs.items() if "lost its data" not in a.log()) + ")")
        res = group.run("draws", "rpc", "xtss",
                        '{"operation": "get-ouss-by-state-substate", "state": "Delivered"}', timeout=60)
        assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr

        after = [f"uid://X1/X1/Xa{i}" for i in range(3)]
        for uid in after:
            fleet.status.reset(PROG, uid, RECIPE)
        fleet.wait_delivered(after, timeout=180)
        fleet.assert_exact_end_state(after)
        assert fleet.pids() == pids and all(a.alive() for a in fleet.procs.values()), "no actor restarted"
    except BaseException:
        print(group.logs())
        raise
    finally:
        group.stop_all()


# -- claimed requests deleted while their drivers run

def test_requests_deleted_under_running_drivers_free_torques_slots(actors, env, server):
    actors.start("xtss.py")
    eu = {"DRAWS_LOCATION": "EU", "DRAWS_LOCAL_CACHE": env["DRAWS_EU_CACHE"],
          "DRAWS_DELAY_SCALE": "1"}   # Pipelines of 3-8 s: time to delete their requests
    torque = actors.start("torque-maui.py", "-x", 2, env=eu)
    status = StatusTable(server)
    msgq = server.db(tables.MSGQ)
    first = [f"uid://X1/X1/Xd{i}" for i in range(2)]
    for uid in first:
        launch(actors, uid, "EU")
    claimed = [wait_for(lambda: [m for m in requests_for(server, uid) if m.get("status") == "claimed"],
                        60, what=f"the request of {uid} claimed")[0] for uid in first]
    for doc in claimed:
        msgq.delete(doc["_id"], msgq.get(doc["_id"])["_rev"])
    # Each run ends ReadyForReview, or ProcessingProblem if XTSS's reconciler saw its
    # request gone first (then the run's result is refused as stale): either way, over.
    wait_for(lambda: all(status.get(uid)["state"] in ("ReadyForReview", "ProcessingProblem")
                         for uid in first), 60, what="the two runs to finish")
    wait_for(lambda: torque.log().count("was deleted while") == 2, 30,
             what="Torque/Maui to say the requests were deleted")

    uid = "uid://X1/X1/Xd9"
    launch(actors, uid, "EU")
    wait_for(lambda: status.get(uid)["state"] == "ReadyForReview", 60,
             what="Torque/Maui to take another request")
    assert torque.alive()
