#!/usr/bin/env python3
"""`make demo`: the whole life cycle on one host, driven for you.

Starts the embedded server (unless a CouchDB answers), a whole site
(draws.site: every single-host actor, each with its own log under var/log/,
and the dashboard); launches a few OUSs; answers the DRA and AQUA/QA2
prompts itself (their --auto modes) and prints each OUS's progress. Ctrl-C
stops everything it started, nothing else.

With --tmux the same actors open in a tmux session, a window each, with the
DRA and AQUA/QA2 prompts left for you, as in the original guide.
"""

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import click

from draws import config, dbserver as embedded
from draws.couch import Server, safe_url
from draws.feed import Feed
from draws.ous import EXECUTIVE_FLAG, MANUAL_RECIPE, StatusTable
from draws.runtime import run_main, setup_logging
from draws.site import ROOT, Site

PROGID = "2015.1.00657.S"
# The recipes of the OUSs launched: two without one show the AQUA Batch Helper at work.
RECIPES = ["PipelineCalibration", "PipelineImaging", "PipelineCalAndImg", "PipelineSingleDish", None, None]
UID_PREFIX = "uid://X1/X1/Xb"


def fresh_ouss(status):
    """(UID, recipe) of the OUSs to launch: Xb1 … Xb6, or the next six numbers when
    the server already holds some of those (a person's work, perhaps: left alone)."""
    taken = [int(uid[len(UID_PREFIX):]) for uid in (d.get("entityId") or "" for d in status.all())
             if uid.startswith(UID_PREFIX) and uid[len(UID_PREFIX):].isdigit()]
    first = max(taken) + 1 if taken else 1
    if taken:
        say(f"the server already holds {len(taken)} OUS(s) {UID_PREFIX}N; leaving them as they are, "
            f"this demo launches {UID_PREFIX}{first} … Xb{first + len(RECIPES) - 1}")
    return [(f"{UID_PREFIX}{first + i}", recipe) for i, recipe in enumerate(RECIPES)]


def ensure_server(site, start_server):
    """Use the CouchDB that answers at the site's URL, or START_SERVER() one."""
    if Server(site.couch_url, wait=False).up():
        say(f"using the CouchDB that answers at {safe_url(site.couch_url)}")
    else:
        start_server()
        say(f"started PouchDB Server at {safe_url(site.couch_url)} (in memory)")


def watch(site, server, ouss, timeout):
    """Launch OUSS and print every state change until all are done; (all done?, last states)."""
    status = StatusTable(server)
    uids = {uid for uid, _ in ouss}
    last, done = {}, threading.Event()
    lock = threading.Lock()

    def show(doc):
        uid = doc.get("entityId")
        if uid not in uids:
            return
        key = (doc.get("state"), doc.get("substate"))
        with lock:
            if last.get(uid) == key:
                return
            last[uid] = key
            state, substate = key
            where = doc.get("flags", {}).get(EXECUTIVE_FLAG)
            print(f"{time.strftime('%H:%M:%S')}  {uid:18} {state:20} {substate or '':22}"
                  f"{'at ' + where if where else ''}", flush=True)
            if all(finished(*last.get(u, (None, None))) for u in uids):
                done.set()

    feed = Feed(status.db)
    feed.subscribe(show)
    feed.start()
    for doc in filter(None, map(status.get_or_none, uids)):   # ours only: the table may hold years of OUSs
        show(doc)
    for uid, recipe in ouss:
        site.launch(PROGID, uid, recipe)
    ok = done.wait(timeout)
    feed.stop()
    return ok, last


def finished(state, substate):
    return state in ("Delivered", "ProcessingProblem") or \
        (state == "ReadyForProcessing" and substate == MANUAL_RECIPE)


def closing_words(last):
    """What to do about the OUSs that will not move by themselves (LAST: uid -> (state, substate))."""
    words = []
    for uid, (state, substate) in sorted(last.items()):
        if state == "ReadyForProcessing" and substate == MANUAL_RECIPE:
            words.append(f"{uid} has the {MANUAL_RECIPE} recipe: it waits for a person and will never "
                         f"move by itself; to have the Pipeline process it: "
                         f".venv/bin/python launcher.py {PROGID} {uid} PipelineCalibration")
        elif state == "ProcessingProblem":
            words.append(f"{uid} is ProcessingProblem (its Pipeline run failed, as about one in ten "
                         f"does); to process it again: "
                         f".venv/bin/python launcher.py {PROGID} {uid} PipelineCalibration")
    return words


def say(text):
    print(f"demo: {text}", flush=True)


TMUX_SESSION = "draws"


def tmux_window(name, shell):
    """A new window in the demo's tmux session (the first one creates it)."""
    exists = subprocess.run(["tmux", "has-session", "-t", TMUX_SESSION],
                            stderr=subprocess.DEVNULL).returncode == 0
    cmd = ["new-window", "-t", TMUX_SESSION] if exists else ["new-session", "-d", "-s", TMUX_SESSION]
    subprocess.run(["tmux"] + cmd + ["-n", name, "bash", "-c", shell], check=True)


def tmux_server(site):
    """Run the embedded server in the session's first window, so that it ends with it."""
    data = site.var / "demo-couchdb"
    cmd = " ".join(shlex.quote(a) for a in embedded.command(
        urlsplit(site.couch_url).port or 5984, "127.0.0.1", data, in_memory=True))
    tmux_window("couchdb", f"cd {shlex.quote(str(data))} && {cmd}; exec bash")
    if not embedded.wait_until_up(site.couch_url):
        raise SystemExit("demo: PouchDB Server did not start; see the tmux window 'couchdb'")


def tmux(site):
    """Open every actor in its own tmux window, prompts left to the user."""
    windows = site.actors() + [("launcher", {"DRAWS_LOCATION": "JAO"}, None)]
    for name, extra, argv in windows:
        env = site.env(extra)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("DRAWS_"))
        activate = f"source {shlex.quote(str(ROOT / '.venv' / 'bin' / 'activate'))}"
        run = f"./{' '.join(shlex.quote(a) for a in argv)}" if argv else \
            f"echo 'try: ./launcher.py {PROGID} uid://X1/X1/Xb0 PipelineCalibration'"
        tmux_window(name, f"cd {shlex.quote(str(ROOT))} && {activate} && export {exports} && {run}; exec bash")
    say(f"tmux session '{TMUX_SESSION}' is ready: tmux attach -t {TMUX_SESSION} "
        f"(tmux kill-session -t {TMUX_SESSION} stops it all)")
    say("paste UIDs into the 'dra' and 'aqua-qa2' windows; the dashboard is at "
        f"http://localhost:{site.dashboard_port}")


@click.command()
@click.option("--tmux", "use_tmux", is_flag=True, help="Open each actor in its own tmux window instead.")
@click.option("--exit-when-done", is_flag=True, help="Stop everything once every OUS is done.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the OUSs.")
@click.option("--dashboard-port", default=5000, show_default=True)
@click.option("--jao-cache-port", default=8001, show_default=True)
@click.option("--eu-cache-port", default=8000, show_default=True)
@run_main("demo")
def main(use_tmux, exit_when_done, timeout, dashboard_port, jao_cache_port, eu_cache_port):
    """Run DRAWS on this host and watch OUSs reach Delivered."""
    setup_logging("demo", "WARNING")
    settings = config.load()
    knobs = {"DRAWS_DELAY_SCALE": os.environ.get("DRAWS_DELAY_SCALE", "0.5")}
    knobs.update({k: os.environ[k] for k in ("DRAWS_FAILURE_RATE", "DRAWS_SEED", "DRAWS_LOG_LEVEL")
                  if k in os.environ})
    site = Site(settings.var, settings.couchdb_url, (dashboard_port, jao_cache_port, eu_cache_port), knobs,
                auto=not use_tmux)
    if use_tmux:
        if not shutil.which("tmux"):
            raise SystemExit("demo: tmux is not installed (apt-get install tmux)")
        subprocess.run(["tmux", "kill-session", "-t", TMUX_SESSION], stderr=subprocess.DEVNULL)
        ensure_server(site, lambda: tmux_server(site))
        site.prepare(clear=False)
        tmux(site)
        return
    couchdb = []

    def start_server():
        site.log_dir.mkdir(parents=True, exist_ok=True)
        couchdb.append(embedded.spawn(site.couch_url, site.var / "demo-couchdb", in_memory=True,
                                      log_file=site.log_dir / "couchdb.log", die_with_parent=True))
    try:
        ensure_server(site, start_server)
        server = site.prepare(clear=False)
        ouss = fresh_ouss(StatusTable(server))
        site.start()
        say(f"started {len(site.procs)} processes; their logs are in {site.log_dir}/")
        say(f"dashboard: http://localhost:{dashboard_port}   "
            f"caches: http://localhost:{eu_cache_port}/ (EU), http://localhost:{jao_cache_port}/ (JAO)")
        say(f"launching {len(ouss)} OUSs of {PROGID}; DRA assigns them to EU, QA2 passes them\n")
        ok, last = watch(site, server, ouss, timeout)
        counts = {}
        for state, _ in last.values():
            counts[state] = counts.get(state, 0) + 1
        print()
        say("done: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if ok else
            f"not every OUS finished within {timeout:g} s; dead actors: {site.dead() or 'none'}")
        for words in closing_words(last):
            say(words)
        if not exit_when_done:
            say("everything keeps running; look around, then press Ctrl-C to stop it all")
            while True:
                time.sleep(3600)
        sys.exit(0 if ok else 1)
    except KeyboardInterrupt:
        print()
    finally:
        say("stopping what the demo started")
        site.stop()
        for proc in couchdb:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
