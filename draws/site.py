"""A whole site on one host: JAO's and EU's actors, one CouchDB, two caches.

The actor table (which script runs at which site, with which options) is
here and nowhere else: the demo (``tools/demo.py``), the benchmarks
(``tools/bench.py``) and the tests start and stop a site through
:class:`Site`.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import tables
from .actors.cleaner import clear_all
from .children import spawn
from .couch import Server

ROOT = Path(__file__).resolve().parent.parent   # the project's folder, where the actor scripts are


class Site:
    """Every single-host actor, each a process with its log in VAR/log/.

    PORTS: the dashboard's, JAO's cache's and EU's cache's. KNOBS: DRAWS_*
    variables for every actor (DRAWS_DELAY_SCALE, ...). AUTO: DRA and
    AQUA/QA2 answer their prompts themselves (--auto).
    """

    def __init__(self, var, couch_url, ports, knobs=None, auto=True, max_executions=2):
        self.var = Path(var)
        self.couch_url = couch_url
        self.dashboard_port, self.jao_port, self.eu_port = ports
        self.knobs = dict(knobs or {})
        self.auto = auto
        self.max_executions = max_executions
        self.log_dir = self.var / "log"
        self.jao_cache = self.var / "cache" / "jao"
        self.eu_cache = self.var / "cache" / "eu"
        self.procs = []          # (name, Popen) we started

    def actors(self):
        """(name, environment, command) for every actor."""
        jao = {"DRAWS_LOCATION": "JAO", "DRAWS_LOCAL_CACHE": str(self.jao_cache)}
        eu = {"DRAWS_LOCATION": "EU", "DRAWS_LOCAL_CACHE": str(self.eu_cache)}
        jao_url = f"http://localhost:{self.jao_port}"
        dra = ["dra.py", "-a", "EU"] + (["--auto"] if self.auto else [])
        qa2 = ["aqua-qa2.py", "--cache-url", jao_url] + (["--auto", "P"] if self.auto else [])
        return [
            ("xtss", jao, ["xtss.py"]),
            ("aqua-batch-helper", jao, ["aqua-batch-helper.py"]),
            ("torque-maui", eu, ["torque-maui.py", "-x", str(self.max_executions)]),
            ("cache-eu", eu, ["replicated-cache.py", "-p", str(self.eu_port)]),
            ("cache-jao", jao, ["replicated-cache.py", "-euc", str(self.eu_cache), "-p", str(self.jao_port)]),
            ("product-ingestor", jao, ["product-ingestor.py"]),
            ("data-tracker", eu, ["data-tracker.py"]),
            ("dashboard", jao, ["dashboard/server.py", "--port", str(self.dashboard_port),
                                "--cache-url", jao_url]),
            ("dra", jao, dra),
            ("aqua-qa2", jao, qa2),
        ]

    def env(self, extra):
        """An actor's environment: ours without DRAWS_*, then the site's, then EXTRA."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
        env.update(DRAWS_COUCHDB_URL=self.couch_url, DRAWS_JAO_CACHE=str(self.jao_cache),
                   DRAWS_EU_CACHE=str(self.eu_cache), PYTHONUNBUFFERED="1")
        env.update(self.knobs)
        env.update(extra)
        return env

    def prepare(self, clear=True):
        """Empty caches and (CLEAR) tables (CouchDB must answer); returns the Server."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for cache in (self.jao_cache, self.eu_cache):
            shutil.rmtree(cache, ignore_errors=True)
            (cache / "weblogs").mkdir(parents=True)
        server = Server(self.couch_url)
        tables.ensure(server)
        if clear:
            clear_all(server)
        return server

    def start(self):
        """Start every actor; they die with this process."""
        for name, extra, argv in self.actors():
            log = open(self.log_dir / f"{name}.log", "wb")
            proc = spawn([sys.executable, "-u"] + argv, cwd=str(ROOT), env=self.env(extra),
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()   # the child has its own copy
            self.procs.append((name, proc))
        return self

    def launch(self, progid, uid, recipe=None):
        """Run launcher.py for UID at JAO, as a person would."""
        argv = [sys.executable, "launcher.py", progid, uid] + ([recipe] if recipe else [])
        subprocess.run(argv, cwd=str(ROOT), env=self.env({"DRAWS_LOCATION": "JAO"}),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pids(self):
        return {name: proc.pid for name, proc in self.procs}

    def dead(self):
        return [name for name, proc in self.procs if proc.poll() is not None]

    def stop(self):
        """Stop every actor we started (and what each started), nothing else."""
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
