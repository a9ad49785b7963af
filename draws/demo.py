"""`make demo`: the whole life cycle on one host, driven for you.

Starts the embedded server (unless a CouchDB answers), every single-host
actor with its own log under var/log/, and the dashboard; launches a few
OUSs; answers the DRA and AQUA/QA2 prompts itself (their --auto modes) and
prints each OUS's progress. Ctrl-C stops everything it started, nothing else.

With --tmux the same actors open in a tmux session, a window each, with the
DRA and AQUA/QA2 prompts left for you, as in the original guide.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from . import server as embedded, tables
from .children import spawn
from .couch import Server, safe_url
from .feed import Feed
from .ous import MANUAL_RECIPE, StatusTable

ROOT = embedded.ROOT
PROGID = "2015.1.00657.S"
# (UID, recipe): two without a recipe show the AQUA Batch Helper at work.
OUSS = [("uid://X1/X1/Xb1", "PipelineCalibration"), ("uid://X1/X1/Xb2", "PipelineImaging"),
        ("uid://X1/X1/Xb3", "PipelineCalAndImg"), ("uid://X1/X1/Xb4", "PipelineSingleDish"),
        ("uid://X1/X1/Xb5", None), ("uid://X1/X1/Xb6", None)]


def actor_table(jao_cache, eu_cache, dashboard_port, jao_port, eu_port, auto):
    """(name, environment, command) for every single-host actor."""
    jao = {"DRAWS_LOCATION": "JAO", "DRAWS_LOCAL_CACHE": str(jao_cache)}
    eu = {"DRAWS_LOCATION": "EU", "DRAWS_LOCAL_CACHE": str(eu_cache)}
    jao_url = f"http://localhost:{jao_port}"
    dra = ["dra.py", "-a", "EU"] + (["--auto"] if auto else [])
    qa2 = ["aqua-qa2.py", "--cache-url", jao_url] + (["--auto", "P"] if auto else [])
    return [
        ("xtss", jao, ["xtss.py"]),
        ("aqua-batch-helper", jao, ["aqua-batch-helper.py"]),
        ("torque-maui", eu, ["torque-maui.py", "-x", "2"]),
        ("cache-eu", eu, ["replicated-cache.py", "-p", str(eu_port)]),
        ("cache-jao", jao, ["replicated-cache.py", "-euc", str(eu_cache), "-p", str(jao_port)]),
        ("product-ingestor", jao, ["product-ingestor.py"]),
        ("data-tracker", eu, ["data-tracker.py"]),
        ("dashboard", jao, ["dashboard/server.py", "--port", str(dashboard_port),
                            "--cache-url", jao_url]),
        ("dra", jao, dra),
        ("aqua-qa2", jao, qa2),
    ]


class Demo:
    def __init__(self, var, couch_url, ports, delay_scale):
        self.var = Path(var)
        self.couch_url = couch_url
        self.ports = ports
        self.delay_scale = delay_scale
        self.procs = []          # (name, Popen) we started
        self.log_dir = self.var / "log"
        self.jao_cache = self.var / "cache" / "jao"
        self.eu_cache = self.var / "cache" / "eu"

    def env(self, extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
        env.update(DRAWS_COUCHDB_URL=self.couch_url, DRAWS_JAO_CACHE=str(self.jao_cache),
                   DRAWS_EU_CACHE=str(self.eu_cache), DRAWS_DELAY_SCALE=str(self.delay_scale),
                   PYTHONUNBUFFERED="1")
        for key in ("DRAWS_FAILURE_RATE", "DRAWS_SEED", "DRAWS_LOG_LEVEL"):
            if key in os.environ:
                env[key] = os.environ[key]
        env.update(extra)
        return env

    def prepare(self, start_server=None):
        """Empty caches and tables; start a server unless one answers (with START_SERVER)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for cache in (self.jao_cache, self.eu_cache):
            shutil.rmtree(cache, ignore_errors=True)
            (cache / "weblogs").mkdir(parents=True)
        server = Server(self.couch_url, wait=False)
        if server.up():
            say(f"using the CouchDB that answers at {safe_url(self.couch_url)}")
        else:
            (start_server or self.spawn_server)()
            say(f"started PouchDB Server at {safe_url(self.couch_url)} (in memory)")
        server = Server(self.couch_url)
        tables.ensure(server)
        from .actors.cleaner import clear_all
        clear_all(server)
        return server

    def spawn_server(self):
        proc = embedded.spawn(self.couch_url, self.var / "demo-couchdb", in_memory=True,
                              log_file=self.log_dir / "couchdb.log", die_with_parent=True)
        self.procs.append(("couchdb", proc))

    def start_actors(self, auto=True):
        for name, extra, argv in actor_table(self.jao_cache, self.eu_cache, *self.ports, auto):
            log = open(self.log_dir / f"{name}.log", "wb")
            proc = spawn([sys.executable, "-u"] + argv, cwd=str(ROOT), env=self.env(extra),
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append((name, proc))
        say(f"started {len(self.procs)} processes; their logs are in {self.log_dir}/")

    def launch(self):
        for uid, recipe in OUSS:
            argv = [sys.executable, "launcher.py", PROGID, uid] + ([recipe] if recipe else [])
            subprocess.run(argv, cwd=str(ROOT), env=self.env({"DRAWS_LOCATION": "JAO"}),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def watch(self, server, timeout):
        """Print every state change until all OUSs are done; True if they are."""
        status = StatusTable(server)
        uids = {uid for uid, _ in OUSS}
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
                where = doc.get("flags", {}).get("PL_PROCESSING_EXECUTIVE")
                print(f"{time.strftime('%H:%M:%S')}  {uid:18} {state:20} {substate or '':22}"
                      f"{'at ' + where if where else ''}", flush=True)
                if all(finished(*last.get(u, (None, None))) for u in uids):
                    done.set()

        feed = Feed(status.db)
        feed.subscribe(show)
        feed.start()
        for doc in status.all():
            show(doc)
        self.launch()
        ok = done.wait(timeout)
        feed.stop()
        return ok, last

    def stop(self):
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for name, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def dead(self):
        return [name for name, proc in self.procs if proc.poll() is not None]


def finished(state, substate):
    return state in ("Delivered", "ProcessingProblem") or \
        (state == "ReadyForProcessing" and substate == MANUAL_RECIPE)


def say(text):
    print(f"demo: {text}", flush=True)


TMUX_SESSION = "draws"


def tmux_window(name, shell):
    """A new window in the demo's tmux session (the first one creates it)."""
    exists = subprocess.run(["tmux", "has-session", "-t", TMUX_SESSION],
                            stderr=subprocess.DEVNULL).returncode == 0
    cmd = ["new-window", "-t", TMUX_SESSION] if exists else ["new-session", "-d", "-s", TMUX_SESSION]
    subprocess.run(["tmux"] + cmd + ["-n", name, "bash", "-c", shell], check=True)


def tmux_server(demo):
    """Run the embedded server in the session's first window, so that it ends with it."""
    data = demo.var / "demo-couchdb"
    cmd = " ".join(shlex.quote(a) for a in embedded.command(
        urlsplit(demo.couch_url).port or 5984, "127.0.0.1", data, in_memory=True))
    tmux_window("couchdb", f"cd {shlex.quote(str(data))} && {cmd}; exec bash")
    if not embedded.wait_until_up(demo.couch_url):
        raise SystemExit("demo: PouchDB Server did not start; see the tmux window 'couchdb'")


def tmux(demo):
    """Open every actor in its own tmux window, prompts left to the user."""
    windows = actor_table(demo.jao_cache, demo.eu_cache, *demo.ports, auto=False)
    windows.append(("launcher", {"DRAWS_LOCATION": "JAO"}, None))
    for name, extra, argv in windows:
        env = demo.env(extra)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("DRAWS_"))
        activate = f"source {shlex.quote(str(ROOT / '.venv' / 'bin' / 'activate'))}"
        run = f"./{' '.join(shlex.quote(a) for a in argv)}" if argv else \
            f"echo 'try: ./launcher.py {PROGID} uid://X1/X1/Xb0 PipelineCalibration'"
        tmux_window(name, f"cd {shlex.quote(str(ROOT))} && {activate} && export {exports} && {run}; exec bash")
    say(f"tmux session '{TMUX_SESSION}' is ready: tmux attach -t {TMUX_SESSION} "
        f"(tmux kill-session -t {TMUX_SESSION} stops it all)")
    say("paste UIDs into the 'dra' and 'aqua-qa2' windows; the dashboard is at "
        f"http://localhost:{demo.ports[0]}")


@click.command()
@click.option("--tmux", "use_tmux", is_flag=True, help="Open each actor in its own tmux window instead.")
@click.option("--exit-when-done", is_flag=True, help="Stop everything once every OUS is done.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the OUSs.")
@click.option("--dashboard-port", default=5000, show_default=True)
@click.option("--jao-cache-port", default=8001, show_default=True)
@click.option("--eu-cache-port", default=8000, show_default=True)
def main(use_tmux, exit_when_done, timeout, dashboard_port, jao_cache_port, eu_cache_port):
    """Run DRAWS on this host and watch OUSs reach Delivered."""
    from . import config
    from .runtime import setup_logging
    setup_logging("demo", "WARNING")
    settings = config.load()
    var = os.environ.get("DRAWS_VAR", str(ROOT / "var"))
    delay = os.environ.get("DRAWS_DELAY_SCALE", "0.5")
    demo = Demo(var, settings.couchdb_url, (dashboard_port, jao_cache_port, eu_cache_port), delay)
    if use_tmux:
        if not shutil.which("tmux"):
            raise SystemExit("demo: tmux is not installed (apt-get install tmux)")
        subprocess.run(["tmux", "kill-session", "-t", TMUX_SESSION], stderr=subprocess.DEVNULL)
        demo.prepare(start_server=lambda: tmux_server(demo))
        tmux(demo)
        return
    server = demo.prepare()
    try:
        demo.start_actors()
        say(f"dashboard: http://localhost:{dashboard_port}   "
            f"caches: http://localhost:{eu_cache_port}/ (EU), http://localhost:{jao_cache_port}/ (JAO)")
        say(f"launching {len(OUSS)} OUSs of {PROGID}; DRA assigns them to EU, QA2 passes them\n")
        ok, last = demo.watch(server, timeout)
        counts = {}
        for state, _ in last.values():
            counts[state] = counts.get(state, 0) + 1
        print()
        say("done: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if ok else
            f"not every OUS finished within {timeout:g} s; dead actors: {demo.dead() or 'none'}")
        if not exit_when_done:
            say("everything keeps running; look around, then press Ctrl-C to stop it all")
            while True:
                time.sleep(3600)
        sys.exit(0 if ok else 1)
    except KeyboardInterrupt:
        print()
    finally:
        say("stopping what the demo started")
        demo.stop()
