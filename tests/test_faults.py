"""Faults: actors killed with kill -9, CouchDB restarted or absent, actors doubled.

Every test runs real processes on a real server and ends with the exact
end state of spec §5: nothing lost, nothing duplicated.
"""

import os
import random
import signal
import time
from pathlib import Path

import pytest

from draws import tables
from draws.couch import Server
from draws.ous import StatusTable
from support import Actors, free_port, server_url, start_server, wait_for
from test_lifecycle import PROG, assert_delivered

RECIPE = "PipelineCalibration"


class Fleet:
    """A single-host site (every actor, DRA and AQUA/QA2 on --auto) whose actors
    can be killed with kill -9 and restarted by name."""

    def __init__(self, actors, env, server, torque_workers=2):
        self.actors, self.server = actors, server
        self.jao_cache, self.eu_cache = Path(env["DRAWS_JAO_CACHE"]), Path(env["DRAWS_EU_CACHE"])
        jao = {"DRAWS_LOCATION": "JAO", "DRAWS_LOCAL_CACHE": str(self.jao_cache)}
        eu = {"DRAWS_LOCATION": "EU", "DRAWS_LOCAL_CACHE": str(self.eu_cache)}
        self.jao_port, self.eu_port = free_port(), free_port()
        self.status = StatusTable(server)
        self.specs, self.procs, self.restarts, self.killed = {}, {}, {}, set()
        self.add("xtss", "xtss.py", jao)
        self.add("batch-helper", "aqua-batch-helper.py", jao)
        self.add("torque", "torque-maui.py", eu, "-x", torque_workers)
        self.add("cache-eu", "replicated-cache.py", eu, "-p", self.eu_port)
        self.add("cache-jao", "replicated-cache.py", jao, "-euc", self.eu_cache, "-p", self.jao_port)
        self.add("ingestor", "product-ingestor.py", jao)
        self.add("tracker", "data-tracker.py", eu)
        self.add("dra", "dra.py", jao, "-a", "EU", "--auto")
        self.add("qa2", "aqua-qa2.py", jao, "--auto", "P", "--cache-url", f"http://127.0.0.1:{self.jao_port}")

    def add(self, name, script, env, *args):
        self.specs[name] = (script, args, env)
        self.start(name)

    def start(self, name):
        script, args, env = self.specs[name]
        self.procs[name] = self.actors.start(script, *args, env=env,
                                             name=f"{name}-{self.restarts.get(name, 0)}")

    def kill9(self, name):
        """kill -9 the actor's own process (its children must die with it)."""
        actor = self.procs[name]
        self.killed |= {actor.pid} | descendants(actor.pid)   # its drivers die with it
        os.kill(actor.pid, signal.SIGKILL)
        actor.proc.wait(10)
        actor.kill()   # closes its log; the process is gone already

    def restart(self, name):
        self.kill9(name)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self.start(name)

    def pids(self):
        return {name: actor.pid for name, actor in self.procs.items()}

    def state(self, uid):
        doc = self.status.get_or_none(uid)
        return doc and doc["state"]

    def count(self, table, **selector):
        return len(self.server.db(table).find(selector or {"_id": {"$gt": None}}))

    def messages(self, **selector):
        return self.server.db(tables.MSGQ).find(dict(selector, selector={"$gt": None}))

    def wait_delivered(self, uids, timeout):
        wait_for(lambda: all(self.state(u) == "Delivered" for u in uids), timeout=timeout,
                 interval=0.5, what=lambda: "every OUS Delivered (not yet: "
                 + ", ".join(f"{u}={self.state(u)}" for u in uids if self.state(u) != "Delivered") + ")")

    def assert_exact_end_state(self, uids):
        """Spec §5 for every OUS, and the tables' totals: nothing lost, nothing twice."""
        for uid in uids:
            assert_delivered(self, uid)
        n = len(uids)
        assert self.count(tables.REPORTS) == n
        assert self.count(tables.NGAS) == 6 * n
        assert self.count(tables.METADATA) == 5 * n
        assert self.count(tables.DELIVERY, complete=True) == n
        def settled():
            left = self.unexplained()
            assert not left, left   # shown as the last error if it never settles
            return True
        wait_for(settled, timeout=60, interval=0.5, what="no unconsumed message but replies to callers we killed")
        wait_for(lambda: not self.messages(status="claimed"), what="no message still claimed")
        failed = self.messages(status="failed")
        assert not failed, [(m["selector"], m.get("error")) for m in failed]

    def unexplained(self):
        """Unconsumed messages, except RPC replies to a caller killed while it waited:
        nobody is left to take those (its restarted self asks again)."""
        unconsumed = self.messages(consumed=False)
        if not unconsumed:
            return []   # (and no need to read every request)
        requested = {m["msgbackID"]: m for m in self.server.db(tables.MSGQ).find({"selector": "xtss"})}
        left = []
        for m in unconsumed:
            caller = requested.get(m["selector"], {}).get("sentBy", "")
            if not caller or int(caller.rsplit(":", 1)[-1]) not in self.killed:
                left.append((m["selector"], m.get("sentBy"), m.get("body")))
        return left

    def logs(self):
        return self.actors.logs()


def children(pid):
    """Process ids of PID's children (every thread's)."""
    kids = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:   # gone already
        return kids
    for task in tasks:
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def descendants(pid):
    kids = set(children(pid))
    for kid in list(kids):
        kids |= descendants(kid)
    return kids


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def launch_all(fleet, uids):
    """Half with a recipe, half left to the AQUA Batch Helper (a manual one is redone)."""
    for i, uid in enumerate(uids):
        fleet.status.reset(PROG, uid, RECIPE if i % 2 else None)


def redo_manual(fleet, uids):
    """An OUS the Batch Helper gave ManualCalibration is never processed: give it a Pipeline recipe."""
    def settled():
        for uid in uids:
            doc = fleet.status.get(uid)
            if doc["state"] == "ReadyForProcessing" and not doc["substate"]:
                return False
            if doc["state"] == "ReadyForProcessing" and doc["substate"] == "ManualCalibration":
                fleet.status.reset(PROG, uid, RECIPE)
        return True
    wait_for(settled, timeout=120, interval=0.2, what="a recipe for every OUS")


# -- every kind of actor killed with kill -9 while 20 OUSs flow

KILL_ORDER = ("xtss", "torque", "cache-jao", "cache-eu", "qa2", "ingestor", "tracker", "batch-helper")


def test_each_actor_killed_at_a_random_moment_loses_and_duplicates_nothing(actors, env, server):
    seed = int(os.environ.get("DRAWS_FAULT_SEED", time.time()))
    rng = random.Random(seed)
    print(f"fault seed {seed} (DRAWS_FAULT_SEED={seed} repeats the kill times)")
    fleet = Fleet(actors, env, server)
    uids = [f"uid://X1/X1/Xk{i}" for i in range(20)]
    started = time.monotonic()
    launch_all(fleet, uids)
    killed = []
    try:
        for name in KILL_ORDER:
            if name == "torque":
                # Kill it while a Pipeline Driver runs: the driver must die with it,
                # and its request is taken again once the lease runs out.
                drivers = wait_for(lambda: children(fleet.procs["torque"].pid), timeout=60,
                                   interval=0.01, what="a running Pipeline Driver")
                time.sleep(rng.uniform(0, 0.3))
                fleet.restart(name)
                wait_for(lambda: not any(alive(d) for d in drivers), timeout=10,
                         what="the Pipeline Drivers to die with Torque/Maui")
            else:
                time.sleep(rng.uniform(0.2, 2.0))
                fleet.restart(name)
            killed.append((name, round(time.monotonic() - started, 2)))
            if name == "batch-helper":
                redo_manual(fleet, uids)
        print("killed (actor, seconds after launch):", killed)
        fleet.wait_delivered(uids, timeout=240)
        print(f"20 OUSs Delivered {time.monotonic() - started:.1f} s after launch")
        fleet.assert_exact_end_state(uids)
        assert all(actor.alive() for actor in fleet.procs.values())
    except BaseException:
        print(fleet.logs())
        raise


# -- CouchDB restarted mid-run, its data on disk

@pytest.fixture
def own_couch(tmp_path):
    """A server with its data on disk, which the test may kill and restart."""
    url = server_url()
    data = tmp_path / "couchdb"
    box = {"url": url, "data": data, "log": tmp_path / "couchdb.log"}
    box["proc"] = start_server(url, data, log_file=box["log"], in_memory=False)
    yield box
    box["proc"].kill()
    box["proc"].wait()


def own_site(env, tmp_path, url):
    """An Actors group and clean tables on the server at URL."""
    server = Server(url, max_wait=30)
    tables.ensure(server)
    return Actors(dict(env, DRAWS_COUCHDB_URL=url), tmp_path), server


def test_couchdb_restarted_mid_run_actors_ride_it_out(env, tmp_path, own_couch):
    group, server = own_site(env, tmp_path, own_couch["url"])
    try:
        fleet = Fleet(group, env, server)
        uids = [f"uid://X1/X1/Xr{i}" for i in range(6)]
        for uid in uids:
            fleet.status.reset(PROG, uid, RECIPE)
        wait_for(lambda: sum(fleet.state(u) not in ("ReadyForProcessing", "Processing") for u in uids) >= 2,
                 timeout=120, what="work under way")
        pids = fleet.pids()
        own_couch["proc"].send_signal(signal.SIGKILL)   # no clean shutdown
        own_couch["proc"].wait()
        time.sleep(2)   # the outage itself, not a wait for a condition
        own_couch["proc"] = start_server(own_couch["url"], own_couch["data"], log_file=own_couch["log"],
                                         in_memory=False)
        fleet.wait_delivered(uids, timeout=240)
        fleet.assert_exact_end_state(uids)
        assert fleet.pids() == pids and all(a.alive() for a in fleet.procs.values()), "no actor restarted"
        said = [n for n, a in fleet.procs.items()
                if "waiting for CouchDB" in a.log() or "interrupted" in a.log()]
        assert said, "the outage went unnoticed by every actor"
    except BaseException:
        print(group.logs())
        raise
    finally:
        group.stop_all()


# -- CouchDB down when an actor starts

def test_actor_started_without_couchdb_says_so_once_and_carries_on(env, tmp_path):
    port = free_port()
    password = "pw-Sekr1t-4711"
    url = f"http://127.0.0.1:{port}"
    group = Actors(dict(env, DRAWS_COUCHDB_URL=f"http://draws:{password}@127.0.0.1:{port}"), tmp_path)
    data = tmp_path / "couchdb"
    proc = None
    try:
        xtss = group.start("xtss.py")
        wait_for(lambda: f"waiting for CouchDB at {url} " in xtss.log(), timeout=30,
                 what="the actor to say it waits for CouchDB")
        time.sleep(3)   # let it retry a few times: it must not say so again
        # The server's admin is the URL's user, set before it starts.
        proc = start_server(server_url(port=port, admin=("draws", password)), data,
                            log_file=tmp_path / "couchdb.log", in_memory=False)
        server = Server(f"http://draws:{password}@127.0.0.1:{port}", max_wait=30)
        wait_for(lambda: server.db(tables.STATUS).exists() and f"CouchDB at {url} answers" in xtss.log(),
                 timeout=60, what="the actor to carry on")
        status = StatusTable(server)
        status.reset(PROG, "uid://X1/X1/Xd1")
        res = group.run("draws", "rpc", "xtss",
                        '{"operation": "set-state", "ousUID": "uid://X1/X1/Xd1", "value": "Processing"}')
        assert res.returncode == 0 and "201" in res.stdout, res.stdout + res.stderr
        assert status.get("uid://X1/X1/Xd1")["state"] == "Processing"
        log = xtss.log()
        assert log.count("waiting for CouchDB") == 1, log
        assert "answers again" not in log, log   # it had never answered
        assert password not in log and xtss.alive()
    except BaseException:
        print(group.logs())
        raise
    finally:
        group.stop_all()
        if proc:
            proc.kill()
            proc.wait()


# -- two of the same actor at one site

def test_two_of_each_actor_handle_every_message_once(actors, env, server):
    fleet = Fleet(actors, env, server, torque_workers=1)
    for name in ("xtss", "ingestor", "torque", "cache-jao"):
        script, args, site_env = fleet.specs[name]
        if name == "cache-jao":   # its twin serves on another port
            args = args[:-1] + (free_port(),)
        fleet.add(f"{name}-twin", script, site_env, *args)
    uids = [f"uid://X1/X1/Xt{i}" for i in range(6)]
    try:
        for uid in uids:
            fleet.status.reset(PROG, uid, RECIPE)
        fleet.wait_delivered(uids, timeout=180)
        fleet.assert_exact_end_state(uids)
        handled = fleet.messages(consumed=True)
        assert all(m.get("attempts") == 1 for m in handled if "attempts" in m)
        by_selector = {}
        for m in handled:
            by_selector.setdefault(m["selector"], []).append(m)
        assert len(by_selector["pipeline.process.EU"]) == 6
        assert len(by_selector["ingest.JAO"]) == 6
        logs = {n: a.log() for n, a in fleet.procs.items()}
        assert sum(logs[n].count("starting a Pipeline Driver") for n in ("torque", "torque-twin")) == 6
        assert sum(logs[n].count("products ingested") for n in ("ingestor", "ingestor-twin")) == 6
        # Both of each pair took part (else the test proves nothing about sharing).
        xtss_by = {m.get("consumedBy", "").split("@")[0] for m in by_selector["xtss"]}
        assert xtss_by == {"xtss"} and len({m["consumedBy"] for m in by_selector["xtss"]}) == 2
    except BaseException:
        print(fleet.logs())
        raise


# -- an RPC request whose executor died while serving it

def test_interrupted_rpc_request_is_asked_again_by_a_live_caller_and_dropped_for_a_dead_one(actors, server):
    from concurrent.futures import ThreadPoolExecutor

    from draws import rpc
    from draws.bus import Bus
    from draws.timestamps import timestamp
    from draws.xtss import XtssClient

    status = StatusTable(server)
    alive_uid, dead_uid = "uid://X1/X1/Xi1", "uid://X1/X1/Xi2"
    for uid in (alive_uid, dead_uid):
        status.reset(PROG, uid, RECIPE)
    msgq = server.db(tables.MSGQ)
    bus = Bus(server, actor="caller")

    def claim_by_a_dead_executor(doc):
        """What a receiver killed mid-request leaves: claimed, its lease run out."""
        doc.update(consumed=True, status="claimed", consumedBy="xtss@gone:1", attempts=1,
                   consumedAt=timestamp(), leaseExpires=timestamp())
        msgq.put(doc)

    # A dead caller's request: nobody waits for its reply.
    (dead_id,) = bus.send("xtss", {"operation": "set-state", "ousUID": dead_uid, "value": "Processing"},
                          msgback_id=rpc.new_reply_selector())
    claim_by_a_dead_executor(msgq.get(dead_id))
    # A live caller: its request is interrupted the same way while it waits.
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(XtssClient(bus, timeout=60).ask_set_state, alive_uid, "Processing")
        request = wait_for(lambda: msgq.find({"selector": "xtss", "body.ousUID": alive_uid}),
                           what="the live caller's request")[0]
        claim_by_a_dead_executor(request)
        xtss = actors.start("xtss.py")
        assert answer.result(timeout=60) == 201
    assert status.get(alive_uid)["state"] == "Processing"
    assert [h["state"] for h in status.get(alive_uid)["history"]] == ["ReadyForProcessing", "Processing"]
    wait_for(lambda: msgq.get(dead_id)["status"] == "done", what="the dead caller's request handled")
    assert status.get(dead_uid)["state"] == "ReadyForProcessing"   # not done late
    assert xtss.log().count("interrupted by its executor's end") == 2
    bus.close()
