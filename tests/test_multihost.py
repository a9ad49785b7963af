"""JAO and ARCs as separate hosts: own addresses, own CouchDB, own cache.

Hosts are loopback aliases (127.A.B.2, 127.A.B.3, ...), each with its own
server of the chosen kind (PouchDB Server, or Apache CouchDB with its own
node name, data folder and admin) on port 5984, linked only by CouchDB pull
replication (Apache CouchDB: ``_replicator`` documents, their state in
``_scheduler/docs``) and by
rsync — over ssh to a real sshd, with a key made by the test, in the
two-host tests.
"""

import filecmp
import getpass
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from draws import products, tables
from draws.couch import Server, safe_url
from draws.messages import process_selector
from draws.ous import EXECUTIVE_FLAG, StatusTable
from support import ADMIN, Actors, free_port, server_url, start_server, wait_for

PROG = "2015.1.00657.S"
# Hosts are 127.A.B.2, .3, ... with A.B drawn per session, so that test runs on
# one machine at the same time (CI, a developer) never share a host address.
NET = f"127.{random.randint(10, 250)}.{random.randint(0, 250)}"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class Host:
    """One site: its address, CouchDB, cache and actors."""

    def __init__(self, name, ip, location, root):
        self.name, self.ip, self.location, self.root = name, ip, location, root / name
        self.url = server_url(ip, 5984)
        self.cache = root / name / "cache"
        (self.cache / "weblogs").mkdir(parents=True)
        self.couch = start_server(self.url, root / name / "couchdb", log_file=root / name / "couchdb.log")
        self.server = Server(self.url, max_wait=30)
        tables.ensure(self.server)
        self.status = StatusTable(self.server)
        self.cache_port = free_port(ip)
        base = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
        base.update(DRAWS_COUCHDB_URL=self.url, DRAWS_LOCATION=location,
                    DRAWS_LOCAL_CACHE=str(self.cache), DRAWS_DELAY_SCALE="0",
                    DRAWS_FAILURE_RATE="0", DRAWS_SEED="3", PYTHONUNBUFFERED="1")
        base[f"DRAWS_{location}_CACHE"] = str(self.cache)
        self.actors = Actors(base, root / name)

    def start(self, script, *args, **kw):
        return self.actors.start(script, *args, name=f"{self.name}-{Path(script).stem}", **kw)

    def state(self, uid):
        doc = self.status.get_or_none(uid)
        return doc and doc["state"]

    def count(self, table, **selector):
        return len(self.server.db(table).find(selector or {"_id": {"$gt": None}}))

    def unconsumed(self):
        return self.server.db(tables.MSGQ).find({"consumed": False})

    def stop(self):
        self.actors.stop_all()
        self.couch.kill()
        self.couch.wait()


@pytest.fixture
def hosts(tmp_path, request):
    made = []

    def make(name, ip, location):
        host = Host(name, ip, location, tmp_path)
        made.append(host)
        return host
    yield make
    failed = getattr(request.node, "rep_call", None) and request.node.rep_call.failed
    for host in made:
        if failed:
            print(host.actors.logs())
        host.stop()


@pytest.fixture
def sshd(tmp_path):
    """A real sshd on the ARC's address accepting a key made for the test: returns RSYNC_RSH."""
    d = tmp_path / "ssh"
    d.mkdir()
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = free_port(f"{NET}.3")
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress {NET}.3\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=open(d / "sshd.log", "wb"), stderr=subprocess.STDOUT)
    rsh = (f"ssh -p {port} -i {d / 'client_key'} -o BatchMode=yes -o StrictHostKeyChecking=no "
           f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    wait_for(lambda: subprocess.run(rsh.split() + [f"{NET}.3", "true"],
                                    capture_output=True).returncode == 0,
             timeout=20, what="sshd to accept the key")
    yield rsh
    proc.kill()
    proc.wait()


def replication(command, jao, *arcs):
    env = {}
    if ADMIN:   # never on the command line: JAO's from DRAWS_COUCHDB_URL, the ARCs' from a file
        path = jao.root / "credentials"
        path.write_text("".join(f"machine {arc.ip} login {ADMIN[0]} password {ADMIN[1]}\n" for arc in arcs))
        path.chmod(0o600)
        env["DRAWS_CREDENTIALS_FILE"] = str(path)
    res = jao.actors.run("draws", "replication", command, "--jao", safe_url(jao.url),
                         *[a for arc in arcs for a in ("--arc", safe_url(arc.url))], env=env)
    assert res.returncode == 0, res.stderr
    return res.stdout


def start_jao(jao, arcs, rsh=None, dra=True):
    caches = {}
    for arc in arcs:
        where = f"{getpass.getuser()}@{arc.ip}:{arc.cache}" if rsh else str(arc.cache)
        caches[f"-{arc.location[:2].lower()}c"] = where
    env = {"RSYNC_RSH": rsh} if rsh else {}
    jao.start("xtss.py")
    jao.start("aqua-batch-helper.py")
    if dra:
        jao.start("dra.py", "--auto", "-a", arcs[0].location)
    jao.start("aqua-qa2.py", "--auto", "P")
    jao.start("product-ingestor.py")
    jao.start("replicated-cache.py", *[x for kv in caches.items() for x in kv],
              "--host", jao.ip, "-p", jao.cache_port, env=env)


def start_arc(arc):
    arc.start("torque-maui.py", "-x", "2")
    arc.start("data-tracker.py")
    arc.start("replicated-cache.py", "--host", arc.ip, "-p", arc.cache_port)


def launch(jao, uid, *args):
    res = jao.actors.run("launcher.py", PROG, uid, *args)
    assert res.returncode == 0, res.stderr


def assert_end_state(jao, arc, uids):
    """Spec §5 on both hosts, for UIDS processed at ARC."""
    for host in (jao, arc):
        for uid in uids:
            doc = host.status.get(uid)
            assert doc["state"] == "Delivered" and not doc["substate"]
            assert EXECUTIVE_FLAG not in doc["flags"]
    n = len(uids)
    for host in (jao, arc):
        wait_for(lambda: host.count(tables.NGAS) == 6 * n and host.count(tables.METADATA) == 5 * n
                 and host.count(tables.REPORTS) == n
                 and host.count(tables.DELIVERY, complete=True) == n,
                 what=f"the archive tables at {host.name}")
        wait_for(lambda: not host.unconsumed(), what=f"no unconsumed messages at {host.name}")
        assert not host.server.db(tables.MSGQ).find({"status": "failed"})
    for uid in uids:
        report = jao.server.db(tables.REPORTS).find({"ousUID": uid})[0]
        pdir = products.products_dir(PROG, report["timestamp"])
        cmp = filecmp.dircmp(jao.cache / pdir, arc.cache / pdir)
        assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
        stem = products.weblog_stem(uid, report["timestamp"])
        assert (jao.cache / "weblogs" / stem / "index.html").exists()
        assert (arc.cache / "weblogs" / stem / "index.html").exists()


def test_two_hosts_with_rsync_over_ssh(hosts, sshd):
    jao = hosts("jao", f"{NET}.2", "JAO")
    arc = hosts("arc", f"{NET}.3", "EU")
    out = replication("setup", jao, arc)
    assert out.count("created") == 7
    assert replication("setup", jao, arc).count("exists") == 7        # idempotent
    start_jao(jao, [arc], rsh=sshd)
    start_arc(arc)
    uid = "uid://X1/X1/Xb0"
    launch(jao, uid, "PipelineCalibration")
    wait_for(lambda: jao.state(uid) == "Delivered", timeout=180, what="Delivered at JAO")
    wait_for(lambda: arc.state(uid) == "Delivered", timeout=60, what="Delivered replicated to the ARC")
    assert_end_state(jao, arc, [uid])
    status = replication("status", jao, arc)
    assert f"draws-msgq-from-{NET.replace('.', '_')}_3_5984" in status and "missing" not in status
    if ADMIN:   # in the _replicator documents, never in what is shown or logged
        logs = [p.read_text(errors="replace") for p in jao.root.parent.rglob("*.log")]
        assert logs and not any(ADMIN[1] in text for text in logs + [out, status])


def test_replication_cut_mid_life_cycle(hosts, sshd):
    jao = hosts("jao", f"{NET}.2", "JAO")
    arc = hosts("arc", f"{NET}.3", "EU")
    replication("setup", jao, arc)
    start_jao(jao, [arc], rsh=sshd, dra=False)
    uids = [f"uid://X1/X1/Xc{i}" for i in range(3)]
    for uid in uids:
        launch(jao, uid, "PipelineCalibration", "EU")
    wait_for(lambda: len([m for m in arc.unconsumed() if m["selector"] == process_selector("EU")]) == 3,
             what="the three requests reaching the ARC")
    replication("teardown", jao, arc)                                # cut the link
    start_arc(arc)                                                   # the ARC works on, cut off
    wait_for(lambda: "running the Pipeline" in arc.actors.logs(), what="a Pipeline running at the ARC")
    time.sleep(8)
    assert all(jao.state(u) == "Processing" for u in uids)   # its results cannot reach JAO
    replication("setup", jao, arc)                                   # and restore it
    for uid in uids:
        wait_for(lambda: jao.state(uid) == "Delivered", timeout=240, what=f"{uid} Delivered")
    wait_for(lambda: all(arc.state(u) == "Delivered" for u in uids), what="Delivered at the ARC")
    assert_end_state(jao, arc, uids)
    for uid in uids:
        assert len(jao.server.db(tables.REPORTS).find({"ousUID": uid})) == 1


def test_jao_with_three_arcs(hosts):
    jao = hosts("jao", f"{NET}.2", "JAO")
    arcs = [hosts(loc.lower(), f"{NET}.{i}", loc) for i, loc in ((3, "EA"), (4, "EU"), (5, "NA"))]
    replication("setup", jao, *arcs)
    start_jao(jao, arcs, dra=False)
    for arc in arcs:
        start_arc(arc)
    uids = {arc.location: f"uid://X1/X2/X{arc.location}" for arc in arcs}
    for arc in arcs:
        launch(jao, uids[arc.location], "PipelineImaging")
        res = jao.actors.run("dra.py", "-a", arc.location, input=f"{uids[arc.location]}\n")
        assert res.returncode == 0, res.stderr
    for arc in arcs:
        uid = uids[arc.location]
        wait_for(lambda: jao.state(uid) == "Delivered", timeout=240, what=f"{uid} Delivered")
        history = jao.status.get(uid)["history"]
        assert any(h["state"] == "Processing" for h in history)
        report = jao.server.db(tables.REPORTS).find({"ousUID": uid})
        assert [r["source"] for r in report] == [arc.location]
    for arc in arcs:
        wait_for(lambda: all(arc.state(u) == "Delivered" for u in uids.values()),
                 what=f"Delivered replicated to {arc.name}")
        pdirs = [p.name for p in arc.cache.iterdir() if p.name.startswith(PROG)]
        assert len(pdirs) == 1, f"{arc.name} processed {pdirs}"
    n = len(uids)
    wait_for(lambda: jao.count(tables.NGAS) == 6 * n and jao.count(tables.REPORTS) == n,
             what="JAO's archive")
    wait_for(lambda: not jao.unconsumed(), what="no unconsumed messages at JAO")


def test_rsync_over_ssh_failures_are_one_clear_line_and_a_retry(hosts, sshd, tmp_path):
    jao = hosts("jao", f"{NET}.2", "JAO")
    arc = hosts("arc", f"{NET}.3", "EU")
    (arc.cache / "2015.1.00657.S_2018_07_24T09_49_20.902").mkdir()
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    wrong_key = sshd.split(" -o ")[0].replace(str(tmp_path / "ssh" / "client_key"), str(stranger))
    wrong_key += " -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    where = f"{getpass.getuser()}@{arc.ip}:{arc.cache}"
    refused = jao.start("replicated-cache.py", "-euc", where, "--host", jao.ip, "-p", jao.cache_port,
                        env={"RSYNC_RSH": wrong_key})
    from draws.bus import Bus
    bus = Bus(jao.server, actor="test")

    def failed(name):
        docs = jao.server.db(tables.MSGQ).find({"body.name": name, "status": "failed"})
        return docs[0] if docs else None
    bus.send("cached.JAO", {"fileType": "productsdir", "cachedAt": "EU",
                            "name": "2015.1.00657.S_2018_07_24T09_49_20.902"})
    doc = wait_for(lambda: failed("2015.1.00657.S_2018_07_24T09_49_20.902"), timeout=90,
                   what="the message failed after retries")
    assert "Permission denied (publickey)" in doc["error"], doc["error"]
    log = refused.log()
    assert "retrying" in log and "Traceback" not in log
    assert refused.alive()
    assert not (jao.cache / "2015.1.00657.S_2018_07_24T09_49_20.902").exists()
    assert not [p for p in jao.cache.iterdir() if p.name != "weblogs"]   # no half copy
    refused.kill()
    # A missing remote path, with a good key.
    ok = jao.start("replicated-cache.py", "-euc", where, "--host", jao.ip, "-p", jao.cache_port,
                   env={"RSYNC_RSH": sshd})
    bus.send("cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": "no_such_dir"})
    doc = wait_for(lambda: failed("no_such_dir"), timeout=90, what="the missing path to fail")
    assert "No such file" in doc["error"] or "exit 23" in doc["error"], doc["error"]
    assert ok.alive()
    bus.close()
