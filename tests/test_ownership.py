"""No OUS stuck, nothing doubled (issue 13): the faults that used to leave an OUS
without an owner, or run it twice, each reproduced on real processes.

Every transition is a compare-and-set in XTSS, so of two DRAs, two launchers
or two reviewers exactly one wins and the other is told who did; XTSS's
reconciler re-drives an OUS whose owner is gone, or moves it to
ProcessingProblem with a reason.
"""

import os
import signal
import subprocess
import sys
import time

from draws import tables
from draws.ous import StatusTable
from support import ROOT, wait_for
from test_faults import Fleet
from test_lifecycle import PROG, assert_delivered, refresh_until, site  # noqa: F401 (fixture)

RECIPE = "PipelineCalibration"
LEASE = 30.0   # the bus's lease (draws.bus): an owner is declared gone within 2 of them


def listed_and_idle(prompt, uid, title):
    """Has PROMPT's latest list (TITLE) shown UID, and does it wait for a line? Refresh if idle.

    One refresh at a time: a queue of empty lines would list again after the UID is typed.
    """
    log = prompt.log()
    latest = log.rsplit(title, 1)[-1]
    # Idle: its latest list is followed by the question, and it is not the one we asked for
    # already (the log also holds the actor's own log lines, after the question).
    idle = "quit):" in latest and log.count(title) != getattr(prompt, "refreshed_at", None)
    if "quit):" in latest and uid in latest:
        return True
    if idle:
        prompt.refreshed_at = log.count(title)   # not again before it answered this one
        prompt.write("\n")
    return False


def process_requests(server, uid):
    return [m for m in server.db(tables.MSGQ).find({"selector": "pipeline.process.EU"})
            if m["body"].get("ousUID") == uid]


def assert_once_each(fleet, uids):
    """Spec §5 for every OUS and the totals, and one Pipeline request per OUS."""
    fleet.assert_exact_end_state(uids)
    for uid in uids:
        assert len(process_requests(fleet.server, uid)) == 1, uid


# -- dra.py --auto killed with kill -9 the moment the OUS turns Processing

def test_dra_killed_the_moment_its_ous_turns_processing_leaves_nothing_stuck(actors, env, server):
    fleet = Fleet(actors, env, server)
    uids = [f"uid://X1/X1/Xk{i}" for i in range(3)]
    try:
        for uid in uids:
            fleet.status.reset(PROG, uid, RECIPE)
            wait_for(lambda: fleet.state(uid) != "ReadyForProcessing", timeout=60, interval=0.005,
                     what=f"{uid} assigned")
            fleet.restart("dra")   # kill -9 at once, then start it again
        fleet.wait_delivered(uids, timeout=2 * LEASE + 120)
        assert_once_each(fleet, uids)
    except BaseException:
        print(fleet.logs())
        raise


# -- the same UID typed into two interactive DRA prompts at once

def test_the_same_uid_at_two_dra_prompts_is_assigned_once_and_the_loser_is_told(site, actors):
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao)
    prompts = [actors.start("dra.py", "-a", "EU", env=site.jao, stdin="pipe", name=f"dra-{i}")
               for i in (1, 2)]
    uids = [f"uid://X1/X1/Xp{i}" for i in range(2)]
    for uid in uids:
        site.status.reset(PROG, uid, RECIPE)
        for dra in prompts:
            wait_for(lambda: listed_and_idle(dra, uid, "OUSs ready for Pipeline processing"), interval=0.5,
                     what=f"{dra.name} to list {uid}")
        for dra in prompts:   # as close together as two writes go
            dra.write(f"{uid}\n")
        wait_for(lambda: sum(f"{uid} is Processing at EU." in d.log() or
                             f"{uid} was not assigned" in d.log() for d in prompts) == 2,
                 what="both prompts to answer")
        winners = [d for d in prompts if f"{uid} is Processing at EU." in d.log()]
        assert len(winners) == 1, [d.log() for d in prompts]
        loser = next(d for d in prompts if d is not winners[0])
        # The loser is told who did it: the winner's process.
        assert "dra@" in loser.log() and f":{winners[0].pid}" in loser.log(), loser.log()
    for dra in prompts:
        dra.close_stdin()
        assert dra.proc.wait(30) == 0
    for uid in uids:
        site.wait_state(uid, "Delivered")
        assert_delivered(site, uid)
        assert len(process_requests(site.server, uid)) == 1
    assert site.count(tables.REPORTS) == len(uids)


# -- two dra.py --auto

def test_two_auto_dras_assign_each_ous_once(actors, env, server):
    fleet = Fleet(actors, env, server)
    script, args, dra_env = fleet.specs["dra"]
    fleet.add("dra-twin", script, dra_env, *args)
    uids = [f"uid://X1/X1/Xw{i}" for i in range(6)]
    try:
        for uid in uids:
            fleet.status.reset(PROG, uid, RECIPE)
        fleet.wait_delivered(uids, timeout=180)
        assert_once_each(fleet, uids)
    except BaseException:
        print(fleet.logs())
        raise


# -- two launchers with an executive for the same UID at once

def launcher(env, *args):
    return subprocess.Popen([sys.executable, str(ROOT / "launcher.py"), *args], cwd=str(ROOT),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_launchers_with_an_executive_at_once_one_wins(site, actors):
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao)
    env = dict(site.env, **site.jao)
    uids = [f"uid://X1/X1/Xl{i}" for i in range(3)]
    for uid in uids:
        pair = [launcher(env, PROG, uid, RECIPE, "EU") for _ in range(2)]
        results = [(p.wait(60), *p.communicate()) for p in pair]
        codes = sorted(r[0] for r in results)
        assert codes == [0, 1], results
        winner = pair[[r[0] for r in results].index(0)]
        loser_err = next(r[2] for r in results if r[0] == 1)
        assert f"{uid} is Processing" in loser_err and "--force" in loser_err, loser_err
        assert f":{winner.pid}" in loser_err, loser_err   # who did it
        assert "Traceback" not in loser_err
    for uid in uids:
        site.wait_state(uid, "Delivered")
        assert_delivered(site, uid)
        assert len(process_requests(site.server, uid)) == 1
    assert site.count(tables.REPORTS) == len(uids)


# -- the launcher run again for an OUS that is Processing

def test_the_launcher_refuses_a_processing_ous_unless_forced(site, actors):
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao)
    site.torque.kill()   # the request waits: the OUS stays Processing
    uid = "uid://X1/X1/Xf0"
    site.launch(uid, RECIPE, "EU")
    before = site.status.get(uid)
    again = actors.run("launcher.py", PROG, uid, RECIPE, "EU", env=site.jao)
    assert again.returncode == 1
    assert f"{uid} is Processing" in again.stderr and "--force" in again.stderr, again.stderr
    assert site.status.get(uid)["_rev"] == before["_rev"]   # untouched
    forced = actors.run("launcher.py", "--force", PROG, uid, RECIPE, "EU", env=site.jao)
    assert forced.returncode == 0, forced.stderr
    assert "interrupt" in forced.stderr and "Processing" in forced.stderr, forced.stderr
    # Two requests now wait; the first belongs to an assignment that is over.
    assert len(process_requests(site.server, uid)) == 2
    actors.start("torque-maui.py", "-x", 2, env=site.eu, name="torque-again")
    site.wait_state(uid, "Delivered")
    assert_delivered(site, uid)   # one report: the stale request ran nothing
    history = [h["state"] for h in site.status.get(uid)["history"]]
    assert history.count("Delivered") == 1 and history.count("ReadyForReview") == 1
    wait_for(lambda: all(m.get("status") == "done" for m in process_requests(site.server, uid)),
             what="both requests handled")


def test_a_forced_relaunch_while_the_pipeline_runs_is_reported_once(site, actors):
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao)
    actors.start("dra.py", "-a", "EU", "--auto", env=site.jao)
    uid = "uid://X1/X1/Xf1"
    slow = dict(site.eu, DRAWS_DELAY_SCALE="1")   # a 3-8 s run to interrupt
    site.torque.kill()
    torque = actors.start("torque-maui.py", env=slow, name="torque-slow")
    site.launch(uid, RECIPE, "EU")
    # Forced only once the Pipeline itself runs: a driver that has not started it
    # yet just finds the OUS no longer Processing, and nothing is interrupted.
    wait_for(lambda: "processing " + uid in torque.log(), what="the Pipeline running")
    forced = actors.run("launcher.py", "--force", PROG, uid, RECIPE, env=site.jao)
    assert forced.returncode == 0, forced.stderr
    site.wait_state(uid, "Delivered", timeout=180)
    assert_delivered(site, uid)
    history = [h["state"] for h in site.status.get(uid)["history"]]
    assert history.count("Delivered") == 1 and history.count("ReadyForReview") == 1
    assert "stale" in torque.log() or "not ours" in torque.log() or "refused" in torque.log(), torque.log()


# -- an owner gone: the reconciler in XTSS notices within two leases

def test_a_failed_pipeline_request_puts_its_ous_in_processing_problem_with_the_reason(site, actors):
    site.torque.kill()
    uid = "uid://X1/X1/Xg0"
    site.launch(uid, RECIPE, "EU")
    (request,) = process_requests(site.server, uid)
    # What a Torque/Maui leaves when its driver dies of an I/O error.
    request.update(consumed=True, status="failed", consumedBy="torque-maui@gone:1",
                   error="DrawsError: the Pipeline Driver exited with status 1 (disk on fire)")
    site.server.db(tables.MSGQ).put(request)
    started = time.monotonic()
    site.wait_state(uid, "ProcessingProblem", timeout=2 * LEASE + 30)
    assert time.monotonic() - started <= 2 * LEASE + 5
    doc = site.status.get(uid)
    assert "disk on fire" in doc["problem"]
    assert doc["history"][-1]["state"] == "ProcessingProblem" and "disk on fire" in doc["history"][-1]["reason"]


def test_a_reviewer_killed_mid_review_gives_the_ous_back_within_two_leases(site, actors):
    uid = "uid://X1/X1/Xq0"
    site.launch(uid, RECIPE, "EU")
    site.wait_state(uid, "ReadyForReview")
    qa2 = actors.start("aqua-qa2.py", env=site.jao, stdin="pipe")
    wait_for(lambda: site.count(tables.REPORTS) == 1, what="the report stored")
    wait_for(lambda: refresh_until(qa2, uid), interval=0.5, what="QA2 to list the OUS")
    qa2.write(f"{uid}\n")
    wait_for(lambda: "[F]ail, [P]ass" in qa2.log(), what="the QA2 question")
    assert site.state(uid) == "Reviewing"
    os.killpg(qa2.pid, signal.SIGKILL)
    killed = time.monotonic()
    site.wait_state(uid, "ReadyForReview", timeout=2 * LEASE + 30)
    assert time.monotonic() - killed <= 2 * LEASE + 5
    assert "review" in site.status.get(uid)["history"][-1].get("reason", "")
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao, name="qa2-auto")
    site.wait_state(uid, "Delivered")
    assert_delivered(site, uid)


def test_two_reviewers_of_one_ous_one_reviews_the_other_is_told(site, actors):
    uid = "uid://X1/X1/Xq1"
    site.launch(uid, RECIPE, "EU")
    site.wait_state(uid, "ReadyForReview")
    prompts = [actors.start("aqua-qa2.py", env=site.jao, stdin="pipe", name=f"qa2-{i}") for i in (1, 2)]
    wait_for(lambda: site.count(tables.REPORTS) == 1, what="the report stored")   # by their background part
    for qa2 in prompts:
        wait_for(lambda: listed_and_idle(qa2, uid, "OUSs ready for review"), interval=0.5,
                 what=f"{qa2.name} to list the OUS")
    for qa2 in prompts:
        qa2.write(f"{uid}\n")
    wait_for(lambda: sum("[F]ail, [P]ass" in q.log() or
                         "is not yours to review" in q.log() for q in prompts) == 2,
             what="both prompts to answer")
    reviewing = [q for q in prompts if "[F]ail, [P]ass" in q.log()]
    assert len(reviewing) == 1, [q.log() for q in prompts]
    loser = next(q for q in prompts if q is not reviewing[0])
    assert f"is Reviewing at EU by aqua-qa2@" in loser.log() and f":{reviewing[0].pid} " in loser.log()
    reviewing[0].write("P\n")
    site.wait_state(uid, "Delivered")
    assert_delivered(site, uid)
    for qa2 in prompts:
        qa2.close_stdin()
