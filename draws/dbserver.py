"""The CouchDB server of one host, of either kind the project runs:

* PouchDB Server, embedded (``node_modules``), the default;
* Apache CouchDB 3 from an unpacked release (``DRAWS_COUCHDB_RELEASE``),
  which is not in any package registry and so never assumed.

Both behind one small interface: ``command`` (the command line), ``spawn``
(run it for a URL, in a data folder), ``wait_until_up``, and ``start`` /
``stop`` for `make server` / `make stop`. The URL's user, when it has one, is
made the server's admin (Apache CouchDB 3 refuses to start without one).
``start`` is a no-op when a CouchDB already answers at the URL, so a server
started elsewhere is used as it is; ``stop`` stops only a server ``start``
started.
"""

import configparser
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from . import children
from .couch import Server, safe_url, split_credentials
from .exceptions import ConfigError, CouchError, StartFailed, Unauthorized

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
# Starts BINARY with a fix: continuous feeds end when their client hangs up (see the file).
LAUNCHER = Path(__file__).with_name("pouchdb-server.js")
PID_FILE = "couchdb.pid"


class PouchDB:
    """PouchDB Server: the command line and its settings in DATA_DIR/config.json."""

    name = "PouchDB Server"
    folder = "couchdb"   # its folder under var/
    own_databases = set()

    def command(self, port, host, data_dir, in_memory=False, admin=None):
        if not BINARY.exists():
            raise StartFailed(f"{BINARY} is missing: run `make install` (npm ci) first")
        cfg = data_dir / "config.json"   # the server keeps its own settings here too (admins)
        settings = json.loads(cfg.read_text()) if cfg.exists() else {}
        log = settings.setdefault("log", {})
        log.setdefault("file", str(data_dir / "log.txt"))   # beside its data, not in the current folder
        # Warnings and errors only: a line per request cost a fifth of a write's CPU.
        log.setdefault("level", "warning")
        if admin:   # it hashes the password in place at start
            settings.setdefault("admins", {}).setdefault(*admin)
        cfg.write_text(json.dumps(settings, indent=1))
        cmd = ["node", "--unhandled-rejections=warn", str(LAUNCHER), "--port", str(port),
               "--host", host, "--config", str(cfg), "--no-stdout-logs"]
        cmd += ["--in-memory"] if in_memory else ["--dir", str(data_dir / "data")]
        return cmd


class ApacheCouchDB:
    """Apache CouchDB 3 from the unpacked release RELEASE, one instance per data folder.

    The release stays untouched: the instance's Erlang node settings
    (``vm.args``) and configuration live in its data folder, given to
    ``bin/couchdb`` through COUCHDB_ARGS_FILE and COUCHDB_INI_FILES. It keeps
    its data on disk (it has no in-memory mode).
    """

    name = "Apache CouchDB"
    folder = "apache-couchdb"
    own_databases = {"_users", "_replicator"}   # made by itself (single_node)

    def __init__(self, release):
        self.release = Path(release).resolve()
        if not (self.release / "bin" / "couchdb").exists():
            raise ConfigError(f"DRAWS_COUCHDB_RELEASE names {release}, which holds no bin/couchdb: "
                              "unpack an Apache CouchDB 3 release there")

    def command(self, port, host, data_dir, in_memory=False, admin=None):
        data_dir = data_dir.resolve()
        # Ours, rewritten at each start: where it listens and keeps its files.
        (data_dir / "draws.ini").write_text(
            f"[couchdb]\nsingle_node = true\ndatabase_dir = {data_dir / 'data'}\n"
            f"view_index_dir = {data_dir / 'data'}\n"
            f"[smoosh]\nstate_dir = {data_dir / 'data'}\n"
            f"[chttpd]\nport = {port}\nbind_address = {host}\n"
            f"[log]\nwriter = file\nfile = {data_dir / 'couchdb.log'}\nlevel = warning\n"
            "[cluster]\nn = 1\nq = 1\n")   # one shard a table: its changes keep the order of writes
        # CouchDB's own, written once and then by CouchDB (the last file named is
        # where it saves changes): its uuid, the admins (hashed at first start),
        # its secret. The uuid names the server in replication checkpoints.
        local = data_dir / "local.ini"
        ini = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        ini.optionxform = str   # user names keep their case
        ini.read(local)
        if not ini.has_section("couchdb"):
            ini["couchdb"] = {"uuid": secrets.token_hex(16)}
        if admin:
            if not ini.has_section("admins"):
                ini.add_section("admins")
            ini["admins"].setdefault(*admin)
        with local.open("w") as f:
            ini.write(f)
        local.chmod(0o600)   # a password, hashed or (before the first start) not
        # The Erlang node's name is unique on this machine and kept for good:
        # CouchDB's shard map names it, so a new name would hide every database.
        vm_args = data_dir / "vm.args"
        if not vm_args.exists():
            lines = [line for line in (self.release / "etc" / "vm.args").read_text().splitlines()
                     if not line.startswith(("-name ", "-setcookie"))]
            lines += [f"-name couchdb-{secrets.token_hex(6)}@127.0.0.1",
                      f"-setcookie {secrets.token_hex(16)}"]   # nobody else's node may join
            vm_args.write_text("\n".join(lines) + "\n")
            vm_args.chmod(0o600)
        # ERL_EPMD_ADDRESS: the Erlang port mapper it starts (if none runs) listens on loopback only.
        return ["env", "ERL_EPMD_ADDRESS=127.0.0.1", f"COUCHDB_ARGS_FILE={vm_args}",
                f"COUCHDB_INI_FILES={self.release / 'etc' / 'default.ini'} "
                f"{data_dir / 'draws.ini'} {local}",
                str(self.release / "bin" / "couchdb")]


def kind(release=None):
    """Apache CouchDB from RELEASE, or PouchDB Server when RELEASE is None."""
    return ApacheCouchDB(release) if release else PouchDB()


def command(port, host="127.0.0.1", data_dir=None, in_memory=False, release=None, admin=None):
    """The command line that runs the server on HOST:PORT with its files in DATA_DIR."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return kind(release).command(port, host, data_dir, in_memory, admin)


def wait_until_up(url, timeout=30.0, proc=None):
    """True once the server answers (even a refusal of the URL's credentials)."""
    server = Server(url, wait=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            server.request("GET", "", wait=False, timeout=3)
            return True
        except Unauthorized:
            return True
        except CouchError:
            pass
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def spawn(url, data_dir, in_memory=False, log_file=None, host=None, die_with_parent=False,
          env=None, release=None):
    """Start the server for URL in the background (Apache CouchDB when RELEASE names
    its unpacked release, else PouchDB Server); return the Popen once it answers.

    With DIE_WITH_PARENT it ends with this process (the demo's, the tests');
    `make server`'s outlives the command that started it.
    """
    server = kind(release)
    parts = urlsplit(url)
    port = parts.port or 5984
    host = host or parts.hostname or "127.0.0.1"
    admin = split_credentials(url)[1]
    if release and not admin:
        raise ConfigError(f"Apache CouchDB 3 needs an admin: put one in the URL, as in "
                          f"http://admin:PASSWORD@{host}:{port}")
    data_dir = Path(data_dir)
    cmd = command(port, host, data_dir, in_memory, release, admin)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    popen = children.spawn if die_with_parent else subprocess.Popen
    proc = popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                 start_new_session=True, cwd=str(data_dir), env=env)
    if not wait_until_up(url, timeout=60, proc=proc):
        proc.kill()
        raise StartFailed(f"{server.name} did not start on {safe_url(url)}"
                          + (f"; see {log_file}" if log_file else ""))
    try:
        # Apache CouchDB answers a moment before it has made its own databases.
        deadline = time.monotonic() + 30
        while server.own_databases - set(Server(url, wait=False).all_dbs()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    except Unauthorized:
        if not admin:   # closed to anonymous clients: nothing more to look at
            return proc
        stop_process(proc.pid)
        raise ConfigError(f"the {server.name} in {data_dir} has another password for the URL's "
                          "user (its admins are kept in its folder)") from None
    return proc


def stop_process(pid, grace=10.0):
    """SIGTERM the process group of PID (the server and anything it ran), SIGKILL after GRACE s."""
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _gone(pid):
    try:
        os.waitpid(pid, os.WNOHANG)   # reaps it when it is our child
    except ChildProcessError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def start(url, var_dir, release=None):
    """`make server`: start a server unless one answers; print what happened."""
    if wait_until_up(url, timeout=0.5):
        print(f"CouchDB already answers at {safe_url(url)}: using it")
        return 0
    server = kind(release)
    var_dir = Path(var_dir)
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    data = (var_dir / server.folder).resolve()
    proc = spawn(url, data, log_file=var_dir / "log" / "couchdb.log", release=release)
    (var_dir / PID_FILE).write_text(f"{proc.pid} {data}")
    print(f"{server.name} started on {safe_url(url)} (pid {proc.pid}, data in {data})")
    return 0


def stop(var_dir):
    pid_file = Path(var_dir) / PID_FILE
    if not pid_file.exists():
        print("no server was started here")
        return 0
    pid, _, data = pid_file.read_text().partition(" ")
    pid = int(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    # Its command line names its data folder; without it the server is gone,
    # and the pid may belong to someone else now.
    if not data or data not in cmdline:
        pid_file.unlink()
        print(f"the server started here (pid {pid}) was not running")
        return 0
    stop_process(pid)
    pid_file.unlink()
    print(f"the server started here (pid {pid}) stopped")
    return 0
