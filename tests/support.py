"""Test helpers: the servers the tests start, free ports, waiting on conditions,
actor subprocesses."""

import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from draws import config, dbserver
from draws.children import spawn

ROOT = Path(__file__).resolve().parent.parent

# Which server the tests start: DRAWS_TEST_SERVER=couchdb runs them on Apache
# CouchDB from the unpacked release DRAWS_COUCHDB_RELEASE, else PouchDB Server.
_settings = config.load()
ON_COUCHDB = _settings.test_server == "couchdb"

# For a test whose subject is our own code, not the server (the page layout in a
# browser, the readers fed random documents): the Apache CouchDB pass would only
# repeat it, so it runs in the PouchDB Server pass.
once = pytest.mark.skipif(ON_COUCHDB, reason="its subject does not depend on the server kind: "
                          "it runs in the PouchDB Server pass")
RELEASE = _settings.couchdb_release if ON_COUCHDB else None
SERVER_NAME = dbserver.ApacheCouchDB.name if ON_COUCHDB else dbserver.PouchDB.name
# Apache CouchDB 3 refuses to start without an admin: every server the tests
# start has this one, and its URLs carry it (never printed by the code).
ADMIN = ("draws", secrets.token_hex(8)) if ON_COUCHDB else None


def release_missing():
    """Why the chosen Apache CouchDB cannot run here, or None."""
    if ON_COUCHDB and not (RELEASE and (Path(RELEASE) / "bin" / "couchdb").exists()):
        return (f"Apache CouchDB run skipped: DRAWS_TEST_SERVER=couchdb but DRAWS_COUCHDB_RELEASE "
                f"({RELEASE or 'not set'}) holds no unpacked release")
    return None


def server_url(host="127.0.0.1", port=None, admin=ADMIN):
    """The URL of a server the tests start on HOST:PORT (a free port by default),
    carrying ADMIN's credentials when there is one."""
    port = port or free_port(host)
    auth = f"{admin[0]}:{admin[1]}@" if admin else ""
    return f"http://{auth}{host}:{port}"


def start_server(url, data_dir, log_file=None, in_memory=True):
    """Start the chosen kind of server for URL (its admin from the URL): the Popen.

    It dies with the test run. Its data is in DATA_DIR, or in memory when
    IN_MEMORY on PouchDB Server (Apache CouchDB has no such mode).
    """
    return dbserver.spawn(url, data_dir, in_memory=in_memory, log_file=log_file,
                          die_with_parent=True, release=RELEASE)


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def site_env(couch_url, root):
    """Environment for actor subprocesses: one host, JAO and EU caches made in ROOT, no delays."""
    jao, eu = root / "jao-cache", root / "eu-cache"
    for cache in (jao, eu):
        (cache / "weblogs").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
    env.update(DRAWS_COUCHDB_URL=couch_url, DRAWS_LOCATION="JAO", DRAWS_LOCAL_CACHE=str(jao),
               DRAWS_JAO_CACHE=str(jao), DRAWS_EU_CACHE=str(eu), DRAWS_DELAY_SCALE="0",
               DRAWS_FAILURE_RATE="0", DRAWS_SEED="1", PYTHONUNBUFFERED="1")
    return env


def wait_for(predicate, timeout=60.0, interval=0.05, what="condition"):
    """Poll PREDICATE until it returns a truthy value; fail after TIMEOUT s.

    WHAT names the condition in the failure; a callable is asked at the end, so
    that it can tell the state things were left in.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may not be checkable yet
            last_exc = exc
        time.sleep(interval)
    if callable(what):
        what = what()
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


class Actor:
    """One actor script run as a real subprocess, its output in a log file."""

    def __init__(self, name, argv, env, log_path, stdin=None, cwd=ROOT):
        self.name = name
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")
        # Dies with the test run even when pytest itself is killed (no orphans).
        self.proc = spawn(
            argv, env=env, cwd=str(cwd), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin == "pipe" else subprocess.DEVNULL,
            start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def write(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close_stdin(self):
        self.proc.stdin.close()

    def kill(self, sig=signal.SIGKILL):
        """Kill the actor and everything it started."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def alive(self):
        return self.proc.poll() is None


def _target(script):
    """A script path (relative to the project) or a module name to run with -m."""
    return [str(ROOT / script)] if script.endswith(".py") else ["-m", script]


class Actors:
    """Starts actor scripts with a test's environment; kills them all at the end."""

    def __init__(self, env, log_dir):
        self.env = env
        self.log_dir = Path(log_dir)
        self.started = []

    def start(self, script, *args, name=None, env=None, stdin=None):
        name = name or Path(script).stem
        full_env = dict(self.env, **(env or {}))
        argv = [sys.executable, "-u"] + _target(script) + [str(a) for a in args]
        actor = Actor(name, argv, full_env, self.log_dir / f"{name}-{len(self.started)}.log", stdin=stdin)
        self.started.append(actor)
        return actor

    def run(self, script, *args, env=None, input=None, timeout=120):
        """Run a script to completion; return the CompletedProcess (text)."""
        full_env = dict(self.env, **(env or {}))
        argv = [sys.executable] + _target(script) + [str(a) for a in args]
        return subprocess.run(argv, env=full_env, cwd=str(ROOT), input=input, text=True,
                              capture_output=True, timeout=timeout)

    def stop_all(self):
        for actor in reversed(self.started):
            actor.kill()

    def logs(self):
        return "\n".join(f"--- {a.name} ---\n{a.log()}" for a in self.started)


@contextmanager
def small_filesystem(path, size="2m"):
    """A real tmpfs of SIZE mounted on PATH for the block (made if missing); needs root.

    Skips the test where mounting is not allowed. Unmounted lazily at the end,
    so that a process still holding a file there cannot keep it mounted.
    """
    import pytest
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem on {path}: {res.stderr.strip() or 'not root'}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder, leave=0):
    """Fill FOLDER's filesystem but LEAVE bytes; returns the file to delete to free it."""
    filler = Path(folder) / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler
