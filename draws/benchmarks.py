"""`make bench`: measure the bus and the life cycle against a fresh embedded server.

Prints a table and writes BENCHMARKS.md. Every figure is pooled over
repeated runs; the spread across runs is shown beside it.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click

from . import server as embedded, tables
from .bus import Bus, timestamp
from .couch import Server
from .ous import StatusTable
from .xtss import Client

ROOT = embedded.ROOT


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


class Bench:
    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.server_proc = embedded.spawn(self.url, self.workdir / "couchdb",
                                          log_file=self.workdir / "couchdb.log")
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

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.server_proc.kill()
        self.server_proc.wait()


def _wait_lines(path, count, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise RuntimeError(f"only {len(path.read_text().splitlines()) if path.exists() else 0} "
                       f"of {count} messages arrived at {path}")


def hop_latency(bench, runs=3, per_run=200, gap=0.01):
    """Send → handler start, in ms, with the receiver in another process."""
    out = bench.workdir / f"hop-{uuid.uuid4().hex[:8]}.txt"
    selector = f"bench.hop.{uuid.uuid4().hex[:8]}"
    proc = bench.start(["-m", "draws.benchmarks", "receiver", bench.url, selector, str(out)], "receiver")
    bus = Bus(bench.server, actor="bench")
    time.sleep(1.0)
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
    status.reset("2015.1.00657.S", uid, "PipelineCalibration")
    bus = Bus(bench.server, actor="bench")
    client = Client(bus, timeout=60)
    client.set_exec(uid, "EU")  # warm-up
    values = []
    for _ in range(runs):
        run = []
        for _ in range(per_run):
            t0 = time.perf_counter()
            client.set_exec(uid, "EU")
            run.append((time.perf_counter() - t0) * 1000)
        values.append(run)
    proc.kill()
    proc.wait()
    bus.close()
    return values


def fill_consumed(bench, count, batch=2000):
    """Add COUNT consumed messages to msgq, as a long-running system leaves them."""
    db = bench.server.db(tables.MSGQ)
    now = timestamp()
    for start in range(0, count, batch):
        docs = [{"_id": f"{now}-{uuid.uuid4().hex}", "creationTimestamp": now, "originIP": "127.0.0.1",
                 "selector": "bench.old", "consumed": True, "status": "done", "body": {"n": start + i}}
                for i in range(min(batch, count - start))]
        db.bulk(docs)


def summary(per_run):
    pooled = [v for run in per_run for v in run]
    p50s = [statistics.median(run) for run in per_run]
    return {"n": len(pooled), "p50": statistics.median(pooled), "p99": pct(pooled, 99),
            "p50_runs": (min(p50s), max(p50s))}


def row(name, s, goal):
    lo, hi = s["p50_runs"]
    return f"| {name} | {s['p50']:.1f} | {s['p99']:.1f} | {lo:.1f}–{hi:.1f} | {s['n']} | {goal} |"


@click.group(invoke_without_command=True)
@click.option("--backlog", default=100000, show_default=True,
              help="Consumed messages to add to msgq for the backlog measurement.")
@click.option("--output", default=str(ROOT / "BENCHMARKS.md"), show_default=True)
@click.pass_context
def cli(ctx, backlog, output):
    """Run every measurement and write BENCHMARKS.md."""
    if ctx.invoked_subcommand:
        return
    started = time.time()
    results = {}
    with tempfile.TemporaryDirectory(prefix="draws-bench-") as tmp:
        bench = Bench(tmp)
        try:
            click.echo("bus hop latency (empty msgq) ...")
            results["hop"] = summary(hop_latency(bench))
            click.echo("XTSS RPC round trip ...")
            results["rpc"] = summary(rpc_round_trip(bench))
            click.echo(f"adding {backlog:,} consumed messages to msgq ...")
            t0 = time.time()
            fill_consumed(bench, backlog)
            results["fill_seconds"] = time.time() - t0
            click.echo("bus hop latency (with backlog) ...")
            results["hop_backlog"] = summary(hop_latency(bench))
        finally:
            bench.close()
    results["ratio"] = results["hop_backlog"]["p50"] / results["hop"]["p50"]
    results["backlog"] = backlog
    results["seconds"] = time.time() - started
    table = report(results)
    click.echo("\n" + table)
    Path(output).write_text(table)
    click.echo(f"\nwritten to {output}")


def report(r):
    lines = [
        "# DRAWS benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"the embedded PouchDB Server 4.2.0 on loopback. Rerun with `make bench` "
        f"({r['seconds']:.0f} s this time).",
        "",
        "| measure (ms) | p50 | p99 | p50 across runs | samples | goal |",
        "|---|---|---|---|---|---|",
        row("bus hop, send → handler start (empty msgq)", r["hop"], "≤ 15 / ≤ 60"),
        row(f"bus hop with {r['backlog']:,} consumed messages", r["hop_backlog"], "p50 ≤ 1.5 × empty"),
        row("XTSS RPC round trip", r["rpc"], "≤ 30 / ≤ 100"),
        "",
        f"Backlog ÷ empty hop p50: **{r['ratio']:.2f}** (goal ≤ 1.5). "
        f"Filling msgq took {r['fill_seconds']:.0f} s.",
        "",
        "For scale: the original mockup's bus measured 713 ms p50 on the same server "
        "(1 s polling), 786 ms with 5,000 old messages.",
        "",
    ]
    return "\n".join(lines)


@cli.command()
@click.argument("url")
@click.argument("selector")
@click.argument("outfile")
def receiver(url, selector, outfile):
    """(internal) record each message's hop latency in ms."""
    out = open(outfile, "a", buffering=1)

    def handle(message):
        out.write(f"{(time.time() - message.body['t']) * 1000:.3f}\n")
    Bus(Server(url), actor="bench-receiver").receiver(selector, handle).run()


if __name__ == "__main__":
    cli()
