#!/usr/bin/env python3
"""`make bench`: measure the bus, the life cycle and the dashboard against a fresh embedded server.

Prints a table, writes BENCHMARKS.md and its pictures (docs/bench-*.png).
Figures are pooled over repeated runs, with the spread across runs beside
them. ``--soak N`` runs the (longer) memory soak instead, and keeps its
result in BENCHMARKS.md for the next `make bench` to carry over. How the
figures were reached is told in docs/optimizing.md.
"""

import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import click

from draws import dbserver as embedded, tables
from draws.actors.cleaner import clear_all
from draws.actors.launcher import Launcher
from draws.bus import Bus
from draws.config import Settings, load as load_settings
from draws.ids import doc_id
from draws.couch import Server
from draws.feed import Feed
from draws.history import fill_consumed, populate_scale
from draws.ous import STATES, StatusTable
from draws.receiver import Receiver
from draws.runtime import Context
from draws.site import ROOT, Site
from draws.timestamps import parse_timestamp, timestamp
from draws.xtss import XtssClient

DOCS = ROOT / "docs"
PROGID = "2015.1.00657.S"
RECIPE = "PipelineCalibration"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SOAK_BEGIN, SOAK_END = "<!-- soak -->", "<!-- /soak -->"
SERVERS_BEGIN, SERVERS_END = "<!-- servers -->", "<!-- /servers -->"


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    return os.getloadavg()[0]


class Bench:
    def __init__(self, workdir, release=None):
        """PouchDB Server, or Apache CouchDB from the unpacked RELEASE."""
        self.workdir = Path(workdir)
        self.kind = embedded.kind(release).name
        # Apache CouchDB 3 refuses to start without an admin; the URL carries it.
        auth = f"bench:{secrets.token_hex(8)}@" if release else ""
        self.url = f"http://{auth}127.0.0.1:{free_port()}"
        self.request_count = self.workdir / "requests.txt"   # kept by draws/pouchdb-server.js
        self.server_proc = embedded.spawn(self.url, self.workdir / "couchdb",
                                          log_file=self.workdir / "couchdb.log", release=release,
                                          env=dict(os.environ, DRAWS_REQUEST_COUNT_FILE=str(self.request_count)))
        self.server = Server(self.url)
        tables.ensure(self.server)
        self.procs = []

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
        env.update(DRAWS_COUCHDB_URL=self.url, DRAWS_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, argv, name, **env):
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-u"] + argv, cwd=str(ROOT), env=self.env(**env),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def requests_served(self):
        time.sleep(1.5)   # the server writes the count once a second
        return int(self.request_count.read_text())

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.server_proc.kill()
        self.server_proc.wait()


def _wait_lines(path, count, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise RuntimeError(f"only {len(path.read_text().splitlines()) if path.exists() else 0} "
                       f"of {count} messages arrived at {path}")


# -- the bus and RPC

def hop_latency(bench, runs=3, per_run=200, gap=0.02):
    """Send → handler start, in ms, with the receiver in another process (GAP s between sends)."""
    out = bench.workdir / f"hop-{uuid.uuid4().hex[:8]}.txt"
    selector = f"bench.hop.{uuid.uuid4().hex[:8]}"
    proc = bench.start(["tools/bench.py", "receiver", bench.url, selector, str(out)], "receiver")
    bus = Bus(bench.server, actor="bench")
    bus.send(selector, {"t": time.time(), "warmup": True})
    _wait_lines(out, 1)
    per_run_values = []
    sent = 1
    for _ in range(runs):
        for _ in range(per_run):
            bus.send(selector, {"t": time.time()})
            sent += 1
            time.sleep(gap)
        lines = _wait_lines(out, sent)
        per_run_values.append([float(x) for x in lines[sent - per_run:sent]])
    proc.kill()
    proc.wait()
    bus.close()
    return per_run_values


def rpc_round_trip(bench, runs=3, per_run=100):
    """XTSS set-exec, caller to reply, in ms, with a real xtss.py process."""
    proc = bench.start(["xtss.py"], "xtss")
    status = StatusTable(bench.server)
    uid = "uid://B1/B1/B1"
    status.reset(PROGID, uid, RECIPE)
    bus = Bus(bench.server, actor="bench")
    client = XtssClient(bus, timeout=60)
    client.ask_set_exec(uid, "EU")  # warm-up
    values = []
    for _ in range(runs):
        run = []
        for _ in range(per_run):
            t0 = time.perf_counter()
            client.ask_set_exec(uid, "EU")
            run.append((time.perf_counter() - t0) * 1000)
        values.append(run)
    proc.kill()
    proc.wait()
    bus.close()
    return values


def summary(per_run):
    pooled = [v for run in per_run for v in run]
    p50s = [statistics.median(run) for run in per_run]
    return {"n": len(pooled), "p50": statistics.median(pooled), "p99": pct(pooled, 99),
            "p50_runs": (min(p50s), max(p50s)), "values": pooled}


# -- a whole site

def proc_cpu_seconds(pid):
    """User + system CPU seconds of PID so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def group_cpu_seconds(pgid):
    """User + system CPU seconds so far of the processes of group PGID (a server and its helpers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue   # ended meanwhile
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def proc_memory_mb(pid):
    """(VmRSS, VmHWM) of PID in MB (/proc/<pid>/status)."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


class Workload:
    """A whole site (draws.site) on the bench server, without delays or failures, and runs of OUSs through it."""

    def __init__(self, bench, max_executions=4):
        self.bench = bench
        knobs = {"DRAWS_DELAY_SCALE": "0", "DRAWS_FAILURE_RATE": "0", "DRAWS_SEED": "1",
                 "DRAWS_LOG_LEVEL": "WARNING"}
        self.site = Site(bench.workdir / f"site-{uuid.uuid4().hex[:6]}", bench.url,
                         (free_port(), free_port(), free_port()), knobs, max_executions=max_executions)
        self.status = StatusTable(bench.server)
        self.ctx = Context("bench", Settings(couchdb_url=bench.url), bench.server)
        self.runs = 0

    def start(self):
        self.site.prepare()
        self.site.start()
        return self

    def pids(self):
        return self.site.pids()

    def check_alive(self):
        dead = self.site.dead()
        if dead:
            raise RuntimeError(f"actors died: {', '.join(dead)} (logs in {self.site.log_dir})")

    def run(self, count, timeout=600):
        """Launch COUNT OUSs at once and wait until all are Delivered.

        Returns (wall seconds, seconds after the first launch at which each was
        Delivered, their status documents).
        """
        self.runs += 1
        uids = [f"uid://B{self.runs}/R{self.runs}/X{i}" for i in range(count)]
        wanted = set(uids)
        delivered = {}
        done = threading.Event()
        lock = threading.Lock()

        def on_change(doc):
            uid = doc.get("entityId")
            if uid in wanted and doc.get("state") == "Delivered":
                with lock:
                    delivered.setdefault(uid, time.monotonic())
                    if len(delivered) == count:
                        done.set()
        feed = Feed(self.status.db, name="bench-status")
        feed.subscribe(on_change)
        feed.start()
        started = time.monotonic()
        for uid in uids:
            Launcher(self.ctx, PROGID, uid, RECIPE).run()
        deadline = started + timeout
        while not done.wait(2):
            self.check_alive()
            if time.monotonic() > deadline:
                states = {}
                for uid in uids:
                    state = self.status.get(uid).get("state")
                    states[state] = states.get(state, 0) + 1
                raise RuntimeError(f"not every OUS was Delivered within {timeout} s: {states}")
        wall = max(delivered.values()) - started
        feed.stop()
        docs = [self.status.get(uid) for uid in uids]
        return wall, sorted(t - started for t in delivered.values()), docs

    def stop(self):
        self.site.stop()


def state_durations(docs):
    """{state: [seconds spent in it, one per OUS visit]} from the OUSs' histories."""
    spans = {}
    for doc in docs:
        history = doc.get("history") or []
        entered = None
        for entry in history:
            if entered is None or entry["state"] != entered[0]:
                if entered is not None:
                    spans.setdefault(entered[0], []).append(parse_timestamp(entry["timestamp"]) - entered[1])
                entered = (entry["state"], parse_timestamp(entry["timestamp"]))
    return spans


def lifecycle(site, runs, count, deadline):
    """Up to RUNS runs of COUNT OUSs; no new run once one would end past DEADLINE (time.time())."""
    results = {"wall": [], "rate": [], "curves": [], "durations": {}}
    for _ in range(runs):
        if results["wall"] and time.time() + results["wall"][-1] > deadline:
            click.echo("  no further run: it would break the 10-minute budget of `make bench`")
            break
        wall, curve, docs = site.run(count)
        results["wall"].append(wall)
        results["rate"].append(count / wall)
        results["curves"].append(curve)
        for state, values in state_durations(docs).items():
            results["durations"].setdefault(state, []).extend(values)
        click.echo(f"  {count} OUSs Delivered in {wall:.1f} s (load {loadavg():.1f})")
    return results


def idle(site, seconds=60):
    """Requests to CouchDB and CPU of each process while the site has nothing to do."""
    pids = dict(site.pids(), **{"PouchDB Server": site.bench.server_proc.pid})
    cpu0 = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
    requests0, t0, load0 = site.bench.requests_served(), time.monotonic(), loadavg()
    time.sleep(seconds)
    site.check_alive()
    elapsed = time.monotonic() - t0
    cpu = {name: 100 * (proc_cpu_seconds(pid) - cpu0[name]) / elapsed for name, pid in pids.items()}
    return {"seconds": elapsed, "requests": site.bench.requests_served() - requests0,
            "cpu": cpu, "load": (load0, loadavg())}


def memory(site):
    return {name: proc_memory_mb(pid) for name, pid in site.pids().items()}


def soak(bench, count, wave=50):
    """COUNT OUSs in waves of WAVE: each actor's memory after the first wave and at the end."""
    site = Workload(bench).start()
    try:
        started = time.monotonic()
        site.run(wave)
        warm = memory(site)
        done = wave
        while done < count:
            site.run(min(wave, count - done))
            done = min(count, done + wave)
            click.echo(f"  {done} of {count} OUSs Delivered ({time.monotonic() - started:.0f} s)")
        end = memory(site)
    finally:
        site.stop()
    return {"count": count, "wave": wave, "seconds": time.monotonic() - started, "warm": warm, "end": end,
            "load": loadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


# -- both kinds of server, side by side

def side_by_side(release, count, timeout=300):
    """Bus hop, XTSS RPC and one run of COUNT OUSs on PouchDB Server and on Apache
    CouchDB (from RELEASE), both servers up at once and each measure taken on one
    right after the other, so that a shared machine's load weighs on both alike."""
    with tempfile.TemporaryDirectory(prefix="draws-bench-pouchdb-") as pouch_dir, \
            tempfile.TemporaryDirectory(prefix="draws-bench-couchdb-") as couch_dir:
        benches = [Bench(pouch_dir), Bench(couch_dir, release=release)]
        r = {b.kind: {"loads": []} for b in benches}
        try:
            for measure, run in (("hop", hop_latency), ("rpc", rpc_round_trip)):
                for b in benches:
                    click.echo(f"{measure} on {b.kind} (load {loadavg():.1f}) ...")
                    r[b.kind]["loads"].append(loadavg())
                    cpu = group_cpu_seconds(b.server_proc.pid)
                    r[b.kind][measure] = summary(run(b))
                    # The server's CPU per hop or call: what a loaded machine multiplies.
                    r[b.kind][measure]["server_cpu_ms"] = (
                        1000 * (group_cpu_seconds(b.server_proc.pid) - cpu) / r[b.kind][measure]["n"])
            for b in benches:
                click.echo(f"{count} OUSs on {b.kind} (load {loadavg():.1f}) ...")
                r[b.kind]["loads"].append(loadavg())
                r[b.kind]["life"] = _one_life_cycle(b, count, timeout)
                r[b.kind]["loads"].append(loadavg())
        finally:
            for b in benches:
                b.close()
    return {"count": count, "servers": r, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _one_life_cycle(bench, count, timeout):
    """Wall seconds of COUNT OUSs launcher → Delivered after a one-OUS warm-up, or why not."""
    site = Workload(bench).start()
    try:
        site.run(1, timeout=120)
        wall = site.run(count, timeout=timeout)[0]
        click.echo(f"  {count} OUSs Delivered in {wall:.1f} s")
        return wall
    except RuntimeError as e:
        click.echo(f"  {e}")
        return str(e)
    finally:
        site.stop()


# -- the dashboard

def dashboard_render(bench, repeats=10):
    """The overview page's render time (ms) with 1,000 OUSs and 10,000 messages: fresh and warm."""
    from dashboard.app import create_app
    server = bench.server
    clear_all(server)
    populate_scale(server, "uid://D1/S1/X1")

    def timed(client):
        t0 = time.perf_counter()
        page = client.get("/")
        if page.status_code != 200:
            raise RuntimeError(f"the dashboard answered {page.status_code}")
        return 1000 * (time.perf_counter() - t0)

    # Fresh: no live cache, every table queried for every page. The first
    # request brings PouchDB's indexes up to date after the bulk writes
    # (actors keep them current in a running system), so it is not timed.
    plain = create_app(bench.url, live=False).test_client()
    timed(plain)
    fresh = [timed(plain) for _ in range(repeats)]
    app = create_app(bench.url, live=True)
    hub = app.extensions["draws-dashboard"]
    try:
        deadline = time.monotonic() + 60
        while not all(hub.follows(t) for t in tables.ALL):
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard's feeds did not start")
            time.sleep(0.1)
        client = app.test_client()
        first = timed(client)
        warm = [timed(client) for _ in range(repeats)]
    finally:
        hub.stop()
    return {"fresh": fresh, "first": first, "warm": warm}


# -- msgq retention

def purge_effect(bench):
    """Run `python -m draws purge` on the backlog; msgq before and after."""
    # Patient: the first query after 100,000 writes brings msgq's indexes up to
    # date, which takes PouchDB Server longer than the usual 30 s timeout.
    db = Server(bench.url, timeout=600).db(tables.MSGQ)

    def scan_ms():   # what a receiver's safety re-scan costs
        t0 = time.perf_counter()
        db.find({"consumed": False, "selector": {"$regex": "^(bench\\.x)$"}})
        db.find({"status": "claimed", "selector": {"$regex": "^(bench\\.x)$"}})
        return 1000 * (time.perf_counter() - t0)
    # Some messages that must stay: unconsumed and failed.
    now = timestamp()
    db.bulk([{"_id": doc_id(f"{now}-keep-{i}"), "creationTimestamp": now, "selector": "bench.keep",
              "consumed": i % 2 == 0, "status": "failed" if i % 2 == 0 else None, "body": {}}
             for i in range(20)])
    before = db.info()["doc_count"]
    scan_ms()
    scan_before = statistics.median(scan_ms() for _ in range(5))
    time.sleep(1.1)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "draws", "purge", "--older-than", "1s"], cwd=str(ROOT),
                         env=bench.env(DRAWS_LOG_LEVEL="INFO"), capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if out.returncode != 0:
        raise RuntimeError(f"purge failed: {out.stderr}")
    after = db.info()["doc_count"]
    scan_ms()
    scan_after = statistics.median(scan_ms() for _ in range(5))
    kept = len(db.find({"selector": "bench.keep"}))
    return {"before": before, "after": after, "seconds": seconds, "kept": kept,
            "scan_before": scan_before, "scan_after": scan_after}


# -- pictures

def pictures(r):
    """docs/bench-hop.png and docs/bench-throughput.png; the names written."""
    try:
        import matplotlib
    except ImportError:
        click.echo("matplotlib is missing: pip install -e '.[bench]' for the pictures")
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    DOCS.mkdir(exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("hop", "empty msgq"), ("hop_backlog", f"{r['backlog']:,} consumed messages")):
        values = sorted(r[key]["values"])
        ax.plot(values, [100 * (i + 1) / len(values) for i in range(len(values))], label=label)
    ax.axvline(15, color="grey", linestyle=":", label="goal p50 (15 ms)")
    ax.axvline(60, color="grey", linestyle="--", label="goal p99 (60 ms)")
    ax.set_xscale("log")
    ax.set_xlabel("bus hop, send → handler start (ms)")
    ax.set_ylabel("messages (cumulative %)")
    ax.set_title("Bus hop latency")
    written.append(_save(plt, fig, ax, "bench-hop.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for n, curve in enumerate(r["life"]["curves"], 1):
        ax.step([0] + curve, range(len(curve) + 1), where="post", label=f"run {n}")
    ax.axvline(60, color="grey", linestyle="--", label="goal (60 s)")
    ax.set_xlabel("seconds after the first launch")
    ax.set_ylabel("OUSs Delivered")
    ax.set_title(f"{r['count']} OUSs, launcher → Delivered (no delays, -x 4)")
    written.append(_save(plt, fig, ax, "bench-throughput.png"))
    return written



def _save(plt, fig, ax, name):
    """Grid, legend, tight layout; write docs/NAME and return its path."""
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(DOCS / name, dpi=100)
    plt.close(fig)
    return f"docs/{name}"


# -- the command

@click.group(invoke_without_command=True)
@click.option("--backlog", default=100000, show_default=True,
              help="Consumed messages to add to msgq for the backlog measurement.")
@click.option("--ouss", "count", default=100, show_default=True, help="OUSs per life-cycle run.")
@click.option("--runs", default=2, show_default=True, help="Life-cycle runs.")
@click.option("--idle", "idle_seconds", default=60, show_default=True, help="Seconds of idle site to measure.")
@click.option("--soak", "soak_count", default=0, type=int,
              help="Run only the memory soak with this many OUSs (about 500 make a good one).")
@click.option("--servers-only", is_flag=True,
              help="Run only the side-by-side of PouchDB Server and Apache CouchDB (hop, RPC, "
                   "one life-cycle run of --ouss OUSs) and replace its section.")
@click.option("--couchdb-release", default=lambda: load_settings().couchdb_release,
              help="The unpacked Apache CouchDB 3 release for the side-by-side  [default: "
                   "DRAWS_COUCHDB_RELEASE]; without one that part is left out, and says so.")
@click.option("--output", default=str(ROOT / "BENCHMARKS.md"), show_default=True)
@click.pass_context
def cli(ctx, backlog, count, runs, idle_seconds, soak_count, servers_only, couchdb_release, output):
    """Run every measurement and write BENCHMARKS.md."""
    if ctx.invoked_subcommand:
        return
    started = time.time()
    out = Path(output)
    previous = out.read_text() if out.exists() else ""
    if servers_only:
        text = put_section(previous, servers(couchdb_release, count), SERVERS_BEGIN, SERVERS_END)
    else:
        with tempfile.TemporaryDirectory(prefix="draws-bench-") as tmp:
            bench = Bench(tmp)
            try:
                if soak_count:
                    click.echo(f"memory soak, {soak_count} OUSs ...")
                    result = soak(bench, soak_count)
                else:
                    result = measure_all(bench, backlog, count, runs, idle_seconds)
            finally:
                bench.close()
        if soak_count:
            section = soak_section(result)
            click.echo("\n" + section)
            text = put_section(previous, section, SOAK_BEGIN, SOAK_END)
        else:
            section = servers(couchdb_release, count)
            result.update(backlog=backlog, count=count, seconds=time.time() - started)
            result["images"] = pictures(result)
            # The scale section (tools/bench_scale.py, `make bench-scale`) is carried over as it is.
            scale = previous_section(previous, "<!-- scale -->", "<!-- /scale -->")
            text = report(result, section + "\n" + (previous_section(previous) or soak_section(None))
                          + ("\n" + scale if scale else ""))
            click.echo("\n" + text)
    out.write_text(text)
    click.echo(f"\nwritten to {out}")


def servers(release, count):
    """The side-by-side section, measured when RELEASE holds an Apache CouchDB release."""
    if not release:
        section = servers_section(None, "no Apache CouchDB release was named (DRAWS_COUCHDB_RELEASE)")
    elif not (Path(release) / "bin" / "couchdb").exists():
        section = servers_section(None, f"{release} holds no unpacked Apache CouchDB release")
    else:
        section = servers_section(side_by_side(release, count))
    click.echo("\n" + section)
    return section


def measure_all(bench, backlog, count, runs, idle_seconds):
    r = {"loads": [loadavg()], "started": time.time()}
    click.echo(f"bus hop latency, empty msgq (load {loadavg():.1f}) ...")
    r["hop"] = summary(hop_latency(bench))
    click.echo(f"XTSS RPC round trip (load {loadavg():.1f}) ...")
    r["rpc"] = summary(rpc_round_trip(bench))
    r["loads"].append(loadavg())

    click.echo("starting a whole single-host site ...")
    site = Workload(bench).start()
    try:
        click.echo("  warm-up: one OUS through the life cycle")
        site.run(1, timeout=120)
        time.sleep(3)   # let the last writes of the warm-up settle
        click.echo(f"idle site, {idle_seconds} s (load {loadavg():.1f}) ...")
        r["idle"] = idle(site, idle_seconds)
        click.echo(f"life cycle: up to {runs} × {count} OUSs ...")
        # What follows the life cycle takes about 3 minutes: keep the whole under 10.
        r["life"] = lifecycle(site, runs, count, deadline=r["started"] + 400)
        r["memory"] = memory(site)
    finally:
        site.stop()
    r["loads"].append(loadavg())

    click.echo("dashboard, 1,000 OUSs and 10,000 messages ...")
    r["dashboard"] = dashboard_render(bench)
    clear_all(bench.server)
    click.echo(f"adding {backlog:,} consumed messages to msgq ...")
    t0 = time.time()
    fill_consumed(bench.server, backlog)
    r["fill_seconds"] = time.time() - t0
    click.echo(f"bus hop latency with the backlog (load {loadavg():.1f}) ...")
    r["hop_backlog"] = summary(hop_latency(bench))
    r["ratio"] = r["hop_backlog"]["p50"] / r["hop"]["p50"]
    click.echo("python -m draws purge ...")
    r["purge"] = purge_effect(bench)
    r["loads"].append(loadavg())
    return r


# -- BENCHMARKS.md

def _ok(met):
    return "✅" if met else "❌"


def row(name, s, goal, met):
    lo, hi = s["p50_runs"]
    return f"| {name} | {s['p50']:.1f} | {s['p99']:.1f} | {lo:.1f}–{hi:.1f} | {s['n']} | {goal} | {_ok(met)} |"


def report(r, kept):
    """BENCHMARKS.md from the figures R, followed by the sections KEPT (side by side, soak)."""
    life, idle_, dash, purge = r["life"], r["idle"], r["dashboard"], r["purge"]
    wall = statistics.median(life["wall"])
    rate = statistics.median(life["rate"])
    requests_per_s = idle_["requests"] / idle_["seconds"]
    actors_cpu = {k: v for k, v in idle_["cpu"].items() if k != "PouchDB Server"}
    site_cpu = sum(idle_["cpu"].values())
    fresh, warm = statistics.median(dash["fresh"]), statistics.median(dash["warm"])
    biggest = max(r["memory"].items(), key=lambda kv: kv[1][0])
    loads = ", ".join(f"{x:.1f}" for x in r["loads"])
    lines = [
        "# DRAWS benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}: "
        f"{os.cpu_count()} cores ({_cpu_model()}), Linux {platform.release()}, Python "
        f"{platform.python_version()}, the embedded PouchDB Server 4.2.0 (on disk) on loopback. "
        f"1-minute load average during the run: {loads} (the machine is shared; "
        "figures taken with a load above 2 are pessimistic).",
        "",
        f"Rerun with `make bench` ({r['seconds']:.0f} s this time); the memory soak with "
        "`.venv/bin/python tools/bench.py --soak 500` (it keeps the other figures and "
        "replaces its own section below).",
        "",
        "## Against the goals (issue #7)",
        "",
        "| measure | figure | goal | met |",
        "|---|---|---|---|",
        f"| bus hop, send → handler start, p50 / p99 | {r['hop']['p50']:.1f} / {r['hop']['p99']:.1f} ms "
        f"| ≤ 15 / ≤ 60 ms | {_ok(r['hop']['p50'] <= 15 and r['hop']['p99'] <= 60)} |",
        f"| XTSS RPC round trip, p50 / p99 | {r['rpc']['p50']:.1f} / {r['rpc']['p99']:.1f} ms "
        f"| ≤ 30 / ≤ 100 ms | {_ok(r['rpc']['p50'] <= 30 and r['rpc']['p99'] <= 100)} |",
        f"| hop p50 with {r['backlog']:,} consumed messages ÷ with none | {r['ratio']:.2f} | ≤ 1.5 "
        f"| {_ok(r['ratio'] <= 1.5)} |",
        f"| {r['count']} OUSs launcher → Delivered, no delays, `-x 4` (median of {len(life['wall'])} runs) "
        f"| {wall:.1f} s ({rate:.2f} OUSs/s) | ≤ 60 s | {_ok(wall <= 60)} |",
        f"| idle single-host site, {idle_['seconds']:.0f} s: requests to CouchDB | "
        f"{requests_per_s:.2f} /s | ≤ 1 /s | {_ok(requests_per_s <= 1)} |",
        f"| idle single-host site: CPU, busiest actor / all actors | "
        f"{max(actors_cpu.values()):.2f} % / {sum(actors_cpu.values()):.2f} % of one core | ≤ 1 % "
        f"| {_ok(sum(actors_cpu.values()) <= 1)} |",
        f"| dashboard page, 1,000 OUSs and 10,000 messages, warm / fresh (median) | "
        f"{warm:.0f} / {fresh:.0f} ms | ≤ 200 ms | {_ok(warm <= 200 and fresh <= 200)} |",
        f"| resident memory per actor, largest ({biggest[0]}) | {biggest[1][0]:.0f} MB | ≤ 60 MB "
        f"| {_ok(biggest[1][0] <= 60)} |",
        "",
        "## Bus and RPC",
        "",
        "Each figure pools three runs (200 messages or 100 calls each); the receiver "
        "is another process; one message is sent every 20 ms. RPC is XTSS `set-exec` "
        "through a real `xtss.py`.",
        "",
        "| measure (ms) | p50 | p99 | p50 across runs | samples | goal | met |",
        "|---|---|---|---|---|---|---|",
        row("bus hop, send → handler start (empty msgq)", r["hop"], "≤ 15 / ≤ 60",
            r["hop"]["p50"] <= 15 and r["hop"]["p99"] <= 60),
        row(f"bus hop with {r['backlog']:,} consumed messages", r["hop_backlog"], "p50 ≤ 1.5 × empty",
            r["ratio"] <= 1.5),
        row("XTSS RPC round trip", r["rpc"], "≤ 30 / ≤ 100", r["rpc"]["p50"] <= 30 and r["rpc"]["p99"] <= 100),
        "",
        f"Backlog ÷ empty hop p50: **{r['ratio']:.2f}**. Filling msgq took {r['fill_seconds']:.0f} s.",
        "",
    ]
    if "docs/bench-hop.png" in r["images"]:
        lines += ["![Bus hop latency, cumulative](docs/bench-hop.png)", ""]
    lines += [
        "## The life cycle",
        "",
        f"{len(life['wall'])} runs of {r['count']} OUSs (recipe {RECIPE}) launched at once into a whole "
        "single-host site (`draws.site`'s actors: XTSS, AQUA Batch Helper, DRA --auto, "
        "Torque/Maui -x 4, both caches, AQUA/QA2 --auto P, Product Ingestor, Data Tracker, "
        "dashboard) with `DRAWS_DELAY_SCALE=0` and `DRAWS_FAILURE_RATE=0`.",
        "",
        "| run | wall time (s) | OUSs/s |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {w:.1f} | {x:.2f} |" for n, (w, x) in enumerate(zip(life["wall"], life["rate"]), 1)]
    lines += [
        "",
        "Time spent in each state, from the OUSs' histories (all runs pooled, seconds):",
        "",
        "| state | median | p90 | max |",
        "|---|---|---|---|",
    ]
    for state in STATES:
        values = life["durations"].get(state)
        if values:
            lines.append(f"| {state} | {statistics.median(values):.2f} | {pct(values, 90):.2f} | {max(values):.2f} |")
    lines.append("")
    if "docs/bench-throughput.png" in r["images"]:
        lines += ["![OUS throughput over time](docs/bench-throughput.png)", ""]
    lines += [
        "## The site at rest, and its memory",
        "",
        f"After one OUS warmed it up, the site was left alone for {idle_['seconds']:.0f} s: "
        f"**{idle_['requests']} requests** reached CouchDB ({requests_per_s:.2f} per second; counted "
        "by `draws/pouchdb-server.js`). CPU from `/proc/<pid>/stat` (utime + stime) over the same "
        f"time; memory from `/proc/<pid>/status` after the {len(life['wall'])} life-cycle runs.",
        "",
        "| process | idle CPU (% of one core) | VmRSS (MB) | VmHWM, peak (MB) |",
        "|---|---|---|---|",
    ]
    for name in sorted(idle_["cpu"], key=lambda n: (n == "PouchDB Server", n)):
        rss, hwm = r["memory"].get(name, (None, None))
        mem = f"{rss:.0f} | {hwm:.0f}" if rss is not None else "(not ours: node) | "
        lines.append(f"| {name} | {idle_['cpu'][name]:.2f} | {mem} |")
    lines += [
        f"| **all actors** | {sum(actors_cpu.values()):.2f} | "
        f"{sum(v[0] for v in r['memory'].values()):.0f} | |",
        "",
        f"Whole site including PouchDB Server: {site_cpu:.2f} % of one core.",
        "",
        "## The dashboard",
        "",
        "The overview page with 1,000 OUSs and 10,000 messages (in-process, Flask's test client). "
        f"*Fresh*: no live cache, every table queried for the page ({len(dash['fresh'])} requests). "
        "*Warm*: the live dashboard, whose views are cached until their table's changes feed says "
        f"otherwise ({len(dash['warm'])} requests after a first one of {dash['first']:.0f} ms).",
        "",
        "| page (ms) | median | p90 | goal |",
        "|---|---|---|---|",
        f"| fresh | {fresh:.0f} | {pct(dash['fresh'], 90):.0f} | ≤ 200 |",
        f"| warm | {warm:.0f} | {pct(dash['warm'], 90):.0f} | ≤ 200 |",
        "",
        "## Keeping msgq small: `python -m draws purge`",
        "",
        f"On the backlog above plus 20 unconsumed or failed messages, `python -m draws purge "
        f"--older-than 1s` deleted {purge['before'] - purge['after']:,} handled messages in "
        f"{purge['seconds']:.1f} s: msgq went from {purge['before']:,} to {purge['after']:,} documents, "
        f"and all {purge['kept']} unconsumed or failed messages stayed. A receiver's safety re-scan "
        f"took {purge['scan_before']:.1f} ms before and {purge['scan_after']:.1f} ms after.",
        "",
        "For scale: the original mockup's bus measured 713 ms p50 on the same server "
        "(1 s polling), 786 ms with 5,000 old messages.",
        "",
        "## What was optimized, and how",
        "",
        "How these figures were reached (profiles, each step measured, what was tried and dropped, "
        "what is left) is told in [docs/optimizing.md](docs/optimizing.md).",
        "",
    ]
    return "\n".join(lines) + "\n" + kept


def servers_section(s, why_not=None):
    head = [SERVERS_BEGIN, "## PouchDB Server and Apache CouchDB, side by side (issue #11)", ""]
    if s is None:
        return "\n".join(head + [f"Not measured: {why_not}. Set DRAWS_COUCHDB_RELEASE to an unpacked "
                                 "Apache CouchDB 3 release and run `make bench` (or only this part: "
                                 "`.venv/bin/python tools/bench.py --servers-only`).", "", SERVERS_END, ""])
    pouch, couch = s["servers"][embedded.PouchDB.name], s["servers"][embedded.ApacheCouchDB.name]
    loads = "; ".join(f"{name}: {', '.join(f'{x:.1f}' for x in v['loads'])}"
                      for name, v in s["servers"].items())
    lines = head + [
        f"Measured {s['date']}, both servers up at once, each measure taken on one right after the "
        "other (bus hop: 3 × 200 messages, one every 20 ms; XTSS RPC: 3 × 100 calls; then one run of "
        f"{s['count']} OUSs on each after a one-OUS warm-up). 1-minute load average before the hop, "
        f"the RPC, and before and after the life cycle: {loads} (above 2 the figures are pessimistic, "
        "and more so for whichever server met the heavier moment; well above 2 they measure the "
        "machine more than the servers: rerun on a quiet one). Server CPU: user + system CPU of the "
        "server's processes over the hop or RPC measure, per message or call (a loaded machine's "
        "wait grows with it).",
        "",
        "| measure | PouchDB Server | Apache CouchDB | CouchDB ÷ PouchDB | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    hop_ratio = couch["hop"]["p50"] / pouch["hop"]["p50"]
    lines.append(f"| bus hop p50 (ms) | {pouch['hop']['p50']:.1f} | {couch['hop']['p50']:.1f} | "
                 f"{hop_ratio:.2f} | ≤ 1.1 × | {_ok(hop_ratio <= 1.1)} |")
    lines.append(f"| bus hop p99 (ms) | {pouch['hop']['p99']:.1f} | {couch['hop']['p99']:.1f} | "
                 f"{couch['hop']['p99'] / pouch['hop']['p99']:.2f} | | |")
    rpc_ratio = couch["rpc"]["p50"] / pouch["rpc"]["p50"]
    lines.append(f"| XTSS RPC p50 (ms) | {pouch['rpc']['p50']:.1f} | {couch['rpc']['p50']:.1f} | "
                 f"{rpc_ratio:.2f} | ≤ 1.25 ×, and ≤ 25 ms on a quiet machine | "
                 f"{_ok(rpc_ratio <= 1.25)} / {_ok(couch['rpc']['p50'] <= 25)} |")
    lines.append(f"| XTSS RPC p99 (ms) | {pouch['rpc']['p99']:.1f} | {couch['rpc']['p99']:.1f} | "
                 f"{couch['rpc']['p99'] / pouch['rpc']['p99']:.2f} | ≤ 80 ms | {_ok(couch['rpc']['p99'] <= 80)} |")
    for measure, what in (("hop", "bus hop"), ("rpc", "XTSS RPC")):
        if "server_cpu_ms" in pouch[measure]:
            p_cpu, c_cpu = pouch[measure]["server_cpu_ms"], couch[measure]["server_cpu_ms"]
            lines.append(f"| server CPU per {what} (ms) | {p_cpu:.1f} | {c_cpu:.1f} | "
                         f"{c_cpu / p_cpu:.2f} | | |")

    def wall(v):
        return f"{v:.1f}" if isinstance(v, float) else "not all Delivered"
    p_life, c_life = pouch["life"], couch["life"]
    both = isinstance(p_life, float) and isinstance(c_life, float)
    ratio = f"{c_life / p_life:.2f}" if both else "–"
    met = _ok(isinstance(c_life, float) and c_life <= 60 * s["count"] / 100)
    goal = "≤ 60 s" if s["count"] == 100 else f"≤ 60 s for 100 (here {s['count']}: ≤ {60 * s['count'] / 100:.0f} s)"
    lines.append(f"| {s['count']} OUSs launcher → Delivered (s) | {wall(p_life)} | {wall(c_life)} | "
                 f"{ratio} | {goal} | {met} |")
    for name, v in (("PouchDB Server", p_life), ("Apache CouchDB", c_life)):
        if not isinstance(v, float):
            lines += ["", f"{name}: {v}"]
    return "\n".join(lines + ["", SERVERS_END, ""])


def soak_section(s):
    head = [SOAK_BEGIN, "## Memory soak", ""]
    if s is None:
        return "\n".join(head + ["Not run yet: `.venv/bin/python tools/bench.py --soak 500`.",
                                 "", SOAK_END, ""])
    lines = head + [
        f"{s['count']} OUSs in waves of {s['wave']} (measured {s['date']}, {s['seconds']:.0f} s, "
        f"load {s['load']:.1f} at the end). VmRSS after the first wave (warm) and at the end; "
        "goal: growth ≤ 20 %.",
        "",
        "| actor | warm (MB) | end (MB) | growth | met |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(s["warm"]):
        warm, end = s["warm"][name][0], s["end"].get(name, (0, 0))[0]
        growth = 100 * (end - warm) / warm if warm else float("nan")
        lines.append(f"| {name} | {warm:.1f} | {end:.1f} | {growth:+.1f} % | {_ok(growth <= 20)} |")
    return "\n".join(lines + ["", SOAK_END, ""])


def previous_section(text, begin=SOAK_BEGIN, end=SOAK_END):
    m = re.search(re.escape(begin) + ".*?" + re.escape(end) + "\n?", text, re.S)
    return m.group(0) if m else None


def put_section(text, section, begin, end):
    """TEXT with its section between BEGIN and END replaced by SECTION (if absent: added
    before the soak, which stays last)."""
    old = previous_section(text, begin, end)
    if old:
        return text.replace(old, section)
    if begin != SOAK_BEGIN and SOAK_BEGIN in text:
        return text.replace(SOAK_BEGIN, section + "\n" + SOAK_BEGIN)
    return text + "\n" + section


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@cli.command()
@click.argument("url")
@click.argument("selector")
@click.argument("outfile")
def receiver(url, selector, outfile):
    """(internal) record each message's hop latency in ms."""
    out = open(outfile, "a", buffering=1)

    def handle(message):
        out.write(f"{(time.time() - message.body['t']) * 1000:.3f}\n")
    Receiver(Bus(Server(url), actor="bench-receiver"), selector, handle).run()


if __name__ == "__main__":
    cli()
