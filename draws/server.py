"""The embedded CouchDB-compatible server (PouchDB Server) for one host.

``start`` is a no-op when a CouchDB already answers at the URL, so a real
Apache CouchDB is used as it is; ``stop`` stops only a server we started.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from . import children
from .couch import Server, safe_url
from .exceptions import StartFailed

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
# Starts BINARY with a fix: continuous feeds end when their client hangs up (see the file).
LAUNCHER = Path(__file__).with_name("pouchdb-server.js")


def command(port, host="127.0.0.1", data_dir=None, in_memory=False):
    """The command line that runs PouchDB Server with its files in DATA_DIR."""
    if not BINARY.exists():
        raise StartFailed(f"{BINARY} is missing: run `make install` (npm ci) first")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = data_dir / "config.json"   # the server keeps its own settings here too (admins)
    settings = json.loads(cfg.read_text()) if cfg.exists() else {}
    log = settings.setdefault("log", {})
    log.setdefault("file", str(data_dir / "log.txt"))   # beside its data, not in the current folder
    # Warnings and errors only: a line per request cost a fifth of a write's CPU.
    log.setdefault("level", "warning")
    cfg.write_text(json.dumps(settings, indent=1))
    cmd = ["node", "--unhandled-rejections=warn", str(LAUNCHER), "--port", str(port),
           "--host", host, "--config", str(cfg), "--no-stdout-logs"]
    cmd += ["--in-memory"] if in_memory else ["--dir", str(data_dir / "data")]
    return cmd


def wait_until_up(url, timeout=30.0, proc=None):
    server = Server(url, wait=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.up():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def spawn(url, data_dir, in_memory=False, log_file=None, host=None, die_with_parent=False,
          env=None):
    """Start PouchDB Server for URL in the background; return the Popen.

    With DIE_WITH_PARENT it ends with this process (the demo's, the tests');
    `make server`'s outlives the command that started it.
    """
    parts = urlsplit(url)
    port = parts.port or 5984
    host = host or parts.hostname or "127.0.0.1"
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    popen = children.spawn if die_with_parent else subprocess.Popen
    proc = popen(command(port, host, data_dir, in_memory), stdout=out, stderr=subprocess.STDOUT,
                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(data_dir), env=env)
    if not wait_until_up(url, proc=proc):
        proc.kill()
        raise StartFailed(f"PouchDB Server did not start on {safe_url(url)}"
                          + (f"; see {log_file}" if log_file else ""))
    return proc


def start(url, var_dir):
    """`make server`: start a server unless one answers; print what happened."""
    if Server(url, wait=False).up():
        print(f"CouchDB already answers at {safe_url(url)}: using it")
        return 0
    var_dir = Path(var_dir)
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    proc = spawn(url, var_dir / "couchdb", log_file=var_dir / "log" / "couchdb.log")
    (var_dir / "couchdb.pid").write_text(str(proc.pid))
    print(f"PouchDB Server started on {safe_url(url)} (pid {proc.pid}, data in {var_dir / 'couchdb'})")
    return 0


def stop(var_dir):
    pid_file = Path(var_dir) / "couchdb.pid"
    if not pid_file.exists():
        print("no embedded server was started here")
        return 0
    pid = int(pid_file.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if b"pouchdb-server" not in cmdline:   # gone, and the pid may belong to someone else now
        pid_file.unlink()
        print(f"the embedded server (pid {pid}) was not running")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    print(f"PouchDB Server (pid {pid}) stopped")
    return 0
