#!/usr/bin/env python3
"""`make bench-scale`: how each cost grows with the history (issue 17).

At each N of delivered OUSs behind the site (written by draws.history, N
growing from one point to the next on the same embedded server): 20 OUSs
launcher → Delivered, XTSS get-ouss-by-state-substate for a state holding
10 OUSs, bus hop and RPC, the dashboard's pages fresh, the idle site's
requests and CPU, every process's memory, the database on disk and msgq's
size (kept by the retention). Writes docs/bench-scale.png and its section
of BENCHMARKS.md after each point, so a run cut short keeps what it measured.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (DOCS, PROGID, Bench, Workload, hop_latency, idle, loadavg, memory,  # noqa: E402
                   proc_memory_mb, rpc_round_trip, summary)

from draws import tables  # noqa: E402
from draws.history import generate  # noqa: E402
from draws.ous import StatusTable, encode_uid  # noqa: E402
from draws.site import ROOT  # noqa: E402
from draws.xtss import XtssClient  # noqa: E402

BEGIN, END = "<!-- scale -->", "<!-- /scale -->"
WAITING = "ProcessingProblem"   # no actor moves an OUS out of it: the 10 found stay there
# A Delivered page after a bookmark reads one range of the state-time index, as deep as any
# page: this bookmark (after every time there is) starts at the newest.
PAGES = {"overview": "/", "OUS page": "/ous/{}", "bus page": "/bus",
         "Delivered page by bookmark": "/state/Delivered?older=" + quote(json.dumps(["9999", ""]))}


def timed_ms(fn, repeats, patience=600):
    # The first brings the indexes up to date after the bulk writes: not timed, and
    # tried again while it fails (a dashboard page gives up on CouchDB meanwhile).
    deadline = time.monotonic() + patience
    while True:
        try:
            fn()
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(5)
    values = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        values.append(1000 * (time.perf_counter() - t0))
    return values


def waiting_ouss(bench):
    status = StatusTable(bench.server)
    uids = [f"uid://W1/W1/X{i}" for i in range(10)]
    for uid in uids:
        status.reset(PROGID, uid, "PipelineImaging")
        status.set_state(uid, WAITING)
    return uids


def dashboard_pages(bench, uid, repeats=5):
    from dashboard.app import create_app
    client = create_app(bench.url, live=False).test_client()

    def page(path):
        def get():
            if client.get(path).status_code != 200:
                raise RuntimeError(f"the dashboard's {path} did not answer 200")
        return get
    return {name: statistics.median(timed_ms(page(path.format(encode_uid(uid))), repeats))
            for name, path in PAGES.items()}


def measure(bench, n, uid):
    """Every figure at one N; the site's actors start afresh for it."""
    r = {"n": n, "load": [loadavg()]}
    site = Workload(bench)
    for cache in (site.site.jao_cache, site.site.eu_cache):   # not site.prepare(): keep the tables
        (cache / "weblogs").mkdir(parents=True)
    site.site.log_dir.mkdir(parents=True)
    site.site.start()
    try:
        site.run(1, timeout=300)   # warm-up
        time.sleep(3)
        r["idle"] = idle(site, 30)
        r["life"], _, _ = site.run(20, timeout=900)
        client = XtssClient(site.ctx.bus, timeout=60)
        found = []
        r["find"] = statistics.median(timed_ms(lambda: found.append(len(client.ask_ouss(WAITING))), 20))
        if found[-1] != 10:
            raise RuntimeError(f"{WAITING} holds {found[-1]} OUSs, not 10")
        r["memory"] = dict(memory(site), **{"PouchDB Server": proc_memory_mb(bench.server_proc.pid)})
    finally:
        site.stop()
    r["load"].append(loadavg())
    r["hop"] = summary(hop_latency(bench, runs=2, per_run=100))["p50"]
    r["rpc"] = summary(rpc_round_trip(bench, runs=2, per_run=50))["p50"]
    r["pages"] = dashboard_pages(bench, uid)
    r["disk_mb"] = int(subprocess.run(["du", "-sk", str(bench.workdir / "couchdb")], capture_output=True,
                                      text=True).stdout.split()[0]) / 1024
    r["msgq"] = bench.server.db(tables.MSGQ).info()["doc_count"]
    r["load"].append(loadavg())
    return r


TIMES = [("20 OUSs launcher → Delivered (s)", lambda r: r["life"]),
         ("XTSS find, 10 OUSs in the state, p50 (ms)", lambda r: r["find"]),
         ("bus hop p50 (ms)", lambda r: r["hop"]),
         ("RPC round trip p50 (ms)", lambda r: r["rpc"])] + \
    [(f"dashboard {name}, fresh, p50 (ms)", lambda r, name=name: r["pages"][name]) for name in PAGES]
OTHERS = [("idle requests/s", lambda r: r["idle"]["requests"] / r["idle"]["seconds"]),
          ("idle CPU, all processes (% of a core)", lambda r: sum(r["idle"]["cpu"].values())),
          ("largest actor's memory (MB)",
           lambda r: max(v[0] for k, v in r["memory"].items() if k != "PouchDB Server")),
          ("PouchDB Server memory (MB)", lambda r: r["memory"]["PouchDB Server"][0]),
          ("database on disk (MB)", lambda r: r["disk_mb"]),
          ("msgq documents", lambda r: r["msgq"])]


def section(points, generated, started):
    base = points[0]
    head = "| measure | " + " | ".join(f"N = {p['n']:,}" for p in points) + " | goal |"
    lines = [BEGIN, "## With an archive's worth of OUSs behind it (`make bench-scale`)", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; N delivered OUSs "
             "written by `python -m draws history` (each with its 14 documents; messages only of the last "
             "7 days, as the default `DRAWS_MSGQ_RETENTION` leaves them), then a whole site started afresh. "
             "In brackets: the ratio to N = 0. Load average (1 min) at each point: "
             + ", ".join(f"{p['load'][0]:.1f}–{max(p['load']):.1f}" for p in points) + ".", "",
             head, "|---" * (len(points) + 2) + "|"]
    for name, get in TIMES + OTHERS:
        cells = []
        for p in points:
            value = get(p)
            ratio = f" ({value / get(base):.2f}×)" if p is not base and get(base) else ""
            cells.append(f"{value:,.1f}{ratio}" if isinstance(value, float) else f"{value:,}{ratio}")
        goal = "≤ 1.3 × N = 0" if (name, get) in TIMES else ""
        if name.startswith("dashboard overview"):
            goal += ", ≤ 300 ms"
        goal = {"idle requests/s": "unchanged", "largest actor's memory (MB)": "≤ 60"}.get(name, goal)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {goal} |")
    lines += ["", "Writing the history: " + "; ".join(
        f"{g['ouss']:,} OUSs ({g['documents']:,} documents) in {g['seconds']:.0f} s "
        f"({g['documents'] / g['seconds']:,.0f} documents/s, load {g['load']:.1f})" for g in generated) + ".",
        "", "Memory of each process at the last point (VmRSS, MB): " + ", ".join(
            f"{k} {v[0]:.0f}" for k, v in sorted(points[-1]["memory"].items())) + ".",
        "", "![Growth with the history](docs/bench-scale.png)", "", END, ""]
    return "\n".join(lines)


def plot(points):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    series = TIMES + OTHERS
    fig, axes = plt.subplots(5, 3, figsize=(13, 15))
    ns = [p["n"] for p in points]
    for ax, (name, get) in zip(axes.flat, series):
        ax.plot(ns, [get(p) for p in points], marker="o")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("delivered OUSs behind the site (N)", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(series):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(DOCS / "bench-scale.png", dpi=80)
    plt.close(fig)


def write(output, text):
    out = Path(output)
    previous = out.read_text() if out.exists() else ""
    if BEGIN in previous:
        start, end = previous.index(BEGIN), previous.index(END) + len(END) + 1
        previous = previous[:start] + previous[end:]
    out.write_text(previous.rstrip("\n") + "\n\n" + text)


@click.command()
@click.option("--points", default="0,5000,50000", show_default=True, help="The Ns, growing.")
@click.option("--output", default=str(ROOT / "BENCHMARKS.md"), show_default=True)
def cli(points, output):
    """Measure at each N and write the scale section of BENCHMARKS.md."""
    ns = [int(x) for x in points.split(",")]
    started = time.time()
    results, generated, have = [], [], 0
    with tempfile.TemporaryDirectory(prefix="draws-bench-scale-") as tmp:
        bench = Bench(tmp)
        try:
            uid = waiting_ouss(bench)[0]
            for step, n in enumerate(ns, 1):
                if n > have:
                    click.echo(f"writing {n - have:,} delivered OUSs (load {loadavg():.1f}) ...")
                    t0 = time.time()
                    written = generate(bench.server, n - have, seed=step, force=True)
                    generated.append({"ouss": n - have, "documents": sum(written.values()),
                                      "seconds": time.time() - t0, "load": loadavg()})
                    click.echo(f"  {generated[-1]['documents']:,} documents in {generated[-1]['seconds']:.0f} s")
                    have = n
                click.echo(f"measuring at N = {n:,} (load {loadavg():.1f}) ...")
                results.append(measure(bench, n, uid))
                plot(results)
                text = section(results, generated, started)
                write(output, text)
                click.echo(text)
        finally:
            bench.close()


if __name__ == "__main__":
    cli()
