"""Bad input, table-driven: every selector, command line and prompt gets garbage.

One site runs for the whole module (every actor a real process). Each bus
case sends one bad message and checks it is marked with a clear error (or,
where nothing is wrong but there is nothing to do, handled and logged), and
the actor is alive. The last tests check that a good OUS still flows, that
the bystander OUS is untouched and that nothing was written outside the
cache folders.
"""

import base64
import os
import uuid
from pathlib import Path

import pytest

from draws import tables
from draws.actors.cleaner import clear_all
from draws.archive import Ngas, Reports
from draws.bus import Bus
from draws.rpc import Reply
from draws.couch import Server
from draws.ous import StatusTable
from support import Actors, free_port, site_env, wait_for
from test_cache import make_zip

PROG = "2015.1.00657.S"
TS = "2018-07-24T09:49:20.902"
KNOWN = "uid://X1/X1/Xbad0"          # an OUS that exists, ReadyForProcessing, ManualCalibration
BYSTANDER = "uid://X1/X1/Xby1"       # must come out of all this untouched
VERIFIED = "uid://X1/X1/Xv1"         # Verified by QA2, its products tree holds a symlink
MARK = f"pwned-{uuid.uuid4().hex[:8]}"   # any file by this name anywhere is an escape
HUGE = "x" * 1_000_000
SCRIPT = "<script>alert(1)</script>"


class BadSite:
    def __init__(self, root, couch_url):
        self.root = root
        self.jao_cache, self.eu_cache = root / "jao-cache", root / "eu-cache"
        env = dict(site_env(couch_url, root), DRAWS_RPC_TIMEOUT="30")
        self.env = env
        self.server = Server(couch_url, max_wait=30)
        tables.ensure(self.server)
        clear_all(self.server)
        self.status = StatusTable(self.server)
        self.bus = Bus(self.server, actor="bad-input-test")
        self.actors = Actors(env, root)
        jao = {}
        eu = {"DRAWS_LOCATION": "EU", "DRAWS_LOCAL_CACHE": str(self.eu_cache)}
        self.jao_port = free_port()
        self.procs = {
            "xtss": self.actors.start("xtss.py", env=jao),
            "torque": self.actors.start("torque-maui.py", env=eu),
            "cache-jao": self.actors.start("replicated-cache.py", "-euc", self.eu_cache, "-p", self.jao_port,
                                           env=jao, name="cache-jao"),
            "cache-eu": self.actors.start("replicated-cache.py", "-p", free_port(), env=eu, name="cache-eu"),
            "qa2": self.actors.start("aqua-qa2.py", "--auto", "P", env=jao),
            "ingestor": self.actors.start("product-ingestor.py", "--products-wait", "2", env=jao),
            "tracker": self.actors.start("data-tracker.py", env=eu),
            "dra": self.actors.start("dra.py", "-a", "EU", "--auto", env=jao),
        }
        self.status.reset(PROG, KNOWN, "ManualCalibration")
        self.status.reset(PROG, BYSTANDER, "ManualCalibration")
        self.bystander = self.status.get(BYSTANDER)

    def handled(self, mid):
        doc = self.server.db(tables.MSGQ).get(mid)
        return doc if doc.get("status") in ("done", "failed") else None


# One site (database) for the whole file: its tests run in one worker, in turn
# (`make test` runs tests in two workers; see the Makefile).
pytestmark = pytest.mark.xdist_group("test_bad_input")


@pytest.fixture(scope="module")
def site(couch_url, tmp_path_factory):
    s = BadSite(tmp_path_factory.mktemp("bad-input"), couch_url)
    yield s
    s.actors.stop_all()
    s.bus.close()


# -- fixtures of the file-system cases

def products_tree(cache, uid, ts, link_to=None):
    """A products directory for UID's run TS in CACHE; product-0 a symlink to LINK_TO if given."""
    from draws import products
    pdir = products.products_dir(PROG, ts)
    folder = cache / pdir / products.products_path(uid)
    folder.mkdir(parents=True, exist_ok=True)
    for name in products.product_names(uid, ts):
        (folder / name).write_text(f"product {name}")
    if link_to:
        first = folder / products.product_names(uid, ts)[0]
        first.unlink()
        first.symlink_to(link_to)
    return pdir


def evil_zip(site, stem, entries):
    """A weblog zip cached at EU whose entries try to leave their folder."""
    make_zip(site.eu_cache / f"{stem}.zip", entries)
    return f"{stem}.zip"


def setup_symlinked_products(site):
    secret = site.root / "secret.txt"
    secret.write_text("outside the cache: must never be archived")
    site.status.reset(PROG, VERIFIED, "PipelineCalibration")
    site.status.set_state(VERIFIED, "Verified")
    return {"ousUID": VERIFIED, "timestamp": TS,
            "productsDir": products_tree(site.jao_cache, VERIFIED, TS, link_to=secret)}


def setup_eu_symlink_tree(site):
    ts = "2018-07-24T10:00:00.000"
    pdir = products_tree(site.eu_cache, "uid://X1/X1/Xsl1", ts, link_to="/etc/passwd")
    return {"fileType": "productsdir", "cachedAt": "EU", "name": pdir}


def weblog(stem_suffix):
    return f"weblog-X1-X1-Xz{stem_suffix}-{TS}"


def setup_zip(entries_of):
    def setup(site):
        stem = weblog(uuid.uuid4().hex[:6])
        return {"fileType": "weblog", "cachedAt": "EU", "name": evil_zip(site, stem, entries_of(stem))}
    return setup


def setup_weblog_link(site):
    """A weblog zip at EU that is a symbolic link to a zip outside any cache (rsync copies the link)."""
    stem = weblog("link")
    outside = make_zip(site.root / f"{MARK}.zip", {f"{stem}/index.html": "from outside the cache"})
    (site.eu_cache / f"{stem}.zip").symlink_to(outside)
    return {"fileType": "weblog", "cachedAt": "EU", "name": f"{stem}.zip"}


def setup_not_a_zip(site):
    name = f"{weblog('junk')}.zip"
    (site.eu_cache / name).write_bytes(b"this is not a zip file")
    return {"fileType": "weblog", "cachedAt": "EU", "name": name}


def report(**change):
    body = {"ousUID": KNOWN, "timestamp": TS, "source": "EU",
            "report": base64.b64encode(b"<PipelineAquaReport/>").decode(), "productsDir": "x_dir"}
    body.update(change)
    return {k: v for k, v in body.items() if v is not None}


def xt(operation=None, **fields):
    body = dict(fields)
    if operation:
        body["operation"] = operation
    return body


PP = "pipeline.process.EU"
# (case id, selector, body or setup(site) -> body, expected status, text in the error or the log)
BUS_CASES = [
    # XTSS (RPC): every error is also the reply
    ("xtss-string", "xtss", "set-state please", "failed", "is a JSON object"),
    ("xtss-list", "xtss", ["set-state", KNOWN], "failed", "is a JSON object"),
    ("xtss-null", "xtss", None, "failed", "is a JSON object"),
    ("xtss-empty", "xtss", {}, "failed", "unknown operation"),
    ("xtss-unknown-op", "xtss", xt("drop-table", ousUID=KNOWN), "failed", "unknown operation"),
    ("xtss-op-mistyped", "xtss", xt(["set-state"], ousUID=KNOWN, value="Processing"), "failed", "unknown operation"),
    ("xtss-no-uid", "xtss", xt("set-state", value="Processing"), "failed", "needs the field 'ousUID'"),
    ("xtss-no-value", "xtss", xt("set-state", ousUID=KNOWN), "failed", "needs the field 'value'"),
    ("xtss-unknown-ous", "xtss", xt("set-state", ousUID="uid://X9/X9/X9", value="Processing"), "failed", "no OUS"),
    ("xtss-uid-int", "xtss", xt("set-state", ousUID=42, value="Processing"), "failed", "not an OUS UID"),
    ("xtss-uid-html", "xtss", xt("set-state", ousUID=SCRIPT, value="Processing"), "failed", "not an OUS UID"),
    ("xtss-uid-dotdot", "xtss", xt("set-state", ousUID="uid://X1/../../etc", value="Processing"), "failed",
     "not an OUS UID"),
    ("xtss-bad-state", "xtss", xt("set-state", ousUID=KNOWN, value="Nirvana"), "failed", "not a state"),
    ("xtss-state-html", "xtss", xt("set-state", ousUID=KNOWN, value=SCRIPT), "failed", "not a state"),
    ("xtss-huge-state", "xtss", xt("set-state", ousUID=KNOWN, value=HUGE), "failed", "not a state"),
    ("xtss-substate-html", "xtss", xt("set-substate", ousUID=KNOWN, value=SCRIPT), "failed", "not a substate"),
    ("xtss-substate-object", "xtss", xt("set-substate", ousUID=KNOWN, value={"$gt": None}), "failed",
     "string or null"),
    ("xtss-substate-huge", "xtss", xt("set-substate", ousUID=KNOWN, value=HUGE), "failed", "not a substate"),
    ("xtss-exec-empty", "xtss", xt("set-exec", ousUID=KNOWN, value=""), "failed", "executive name"),
    ("xtss-exec-html", "xtss", xt("set-exec", ousUID=KNOWN, value="<img src=x onerror=alert(1)>"), "failed",
     "executive name"),
    ("xtss-exec-mars", "xtss", xt("set-exec", ousUID=KNOWN, value="MARS"), "failed", "executive name"),
    ("xtss-find-bad-regex", "xtss", xt("get-ouss-by-state-substate", state="Processing", substate="(("),
     "failed", "invalid substate pattern"),
    ("xtss-find-no-state", "xtss", xt("get-ouss-by-state-substate"), "failed", "needs the field 'state'"),
    ("xtss-find-bad-state", "xtss", xt("get-ouss-by-state-substate", state={"$ne": 1}), "failed", "not a state"),
    # Torque/Maui
    ("torque-string", PP, "run it", "failed", "is a JSON object"),
    ("torque-empty", PP, {}, "failed", "needs progID, ousUID, recipe"),
    ("torque-progid-option", PP, {"progID": "-rf", "ousUID": KNOWN, "recipe": "PipelineImaging"}, "failed",
     "not a program id"),
    ("torque-progid-int", PP, {"progID": 2015, "ousUID": KNOWN, "recipe": "PipelineImaging"}, "failed",
     "not a program id"),
    ("torque-uid-dotdot", PP, {"progID": PROG, "ousUID": "../../etc/passwd", "recipe": "PipelineImaging"},
     "failed", "not an OUS UID"),
    ("torque-uid-html", PP, {"progID": PROG, "ousUID": SCRIPT, "recipe": "PipelineImaging"}, "failed",
     "not an OUS UID"),
    ("torque-recipe-option", PP, {"progID": PROG, "ousUID": KNOWN, "recipe": "--help"}, "failed",
     "not a Pipeline recipe"),
    ("torque-recipe-manual", PP, {"progID": PROG, "ousUID": KNOWN, "recipe": "ManualCalibration"}, "failed",
     "not a Pipeline recipe"),
    ("torque-unknown-ous", PP, {"progID": PROG, "ousUID": "uid://X9/X9/X8", "recipe": "PipelineImaging"},
     "done", "is not Processing any more: nothing to do"),
    ("torque-not-assigned", PP, {"progID": PROG, "ousUID": KNOWN, "recipe": "PipelineImaging"},
     "done", "is not Processing any more: nothing to do"),
    # the cache replicators
    ("cache-string", "cached.JAO", "weblog.zip", "failed", "is a JSON object"),
    ("cache-bad-type", "cached.JAO", {"fileType": "exe", "cachedAt": "EU", "name": "a"}, "failed",
     "fileType must be one of"),
    ("cache-bad-site", "cached.JAO", {"fileType": "weblog", "cachedAt": "Mars", "name": "w.zip"}, "failed",
     "cachedAt must be one of"),
    ("cache-dotdot", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": ".."}, "failed",
     "not a plain file or directory name"),
    ("cache-absolute", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": "/etc"}, "failed",
     "not a plain file or directory name"),
    ("cache-option", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": "-e sh -c id"},
     "failed", "not a plain file or directory name"),
    ("cache-option-rsync", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU",
                                          "name": "--remove-source-files"}, "failed",
     "not a plain file or directory name"),
    ("cache-slash", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": f"a/../../{MARK}"},
     "failed", "not a plain file or directory name"),
    ("cache-name-int", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": 7}, "failed",
     "not a plain file or directory name"),
    ("cache-huge-name", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": HUGE}, "failed",
     "not a plain file or directory name"),
    ("cache-weblog-not-zip", "cached.JAO", {"fileType": "weblog", "cachedAt": "EU", "name": "index.html"},
     "failed", "a weblog is a .zip file"),
    ("cache-unknown-file", "cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": "nothing_here"},
     "failed", "rsync"),
    ("cache-here-missing", "cached.EU", {"fileType": "weblog", "cachedAt": "EU", "name": "missing.zip"},
     "failed", "is not in"),
    ("cache-symlink-tree", "cached.JAO", setup_eu_symlink_tree, "done", "pulled"),
    ("cache-zip-dotdot", "cached.JAO", setup_zip(lambda stem: {f"{stem}/../../{MARK}": "x"}), "failed",
     "a '..' component"),
    ("cache-zip-absolute", "cached.JAO", setup_zip(lambda stem: {f"/tmp/{MARK}": "x"}), "failed",
     "an absolute path"),
    ("cache-zip-symlink", "cached.JAO", setup_zip(lambda stem: {f"{stem}/index.html": ("symlink", "/etc/passwd")}),
     "failed", "a symbolic link"),
    ("cache-zip-outside", "cached.JAO", setup_zip(lambda stem: {f"{MARK}.html": "x"}), "failed",
     "outside the"),
    ("cache-not-a-zip", "cached.JAO", setup_not_a_zip, "failed", "not a valid zip file"),
    ("cache-weblog-link", "cached.JAO", setup_weblog_link, "failed", "is a symbolic link or leaves the cache"),
    # AQUA/QA2's report receiver
    ("report-number", "pipeline.report.JAO", 5, "failed", "is a JSON object"),
    ("report-missing", "pipeline.report.JAO", report(report=None), "failed", "needs report"),
    ("report-not-base64", "pipeline.report.JAO", report(report="%%% not base64 %%%"), "failed", "not base64"),
    ("report-bad-timestamp", "pipeline.report.JAO", report(timestamp="yesterday"), "failed", "not a timestamp"),
    ("report-source-html", "pipeline.report.JAO", report(source=SCRIPT), "failed", "is not a location"),
    ("report-dir-dotdot", "pipeline.report.JAO", report(productsDir="../x"), "failed", "not a plain"),
    ("report-uid-html", "pipeline.report.JAO", report(ousUID="uid://X1/X1/X1<svg onload=alert(1)>"), "failed",
     "not an OUS UID"),
    ("report-huge", "pipeline.report.JAO", report(report=base64.b64encode(HUGE.encode()).decode(),
                                                  productsDir=HUGE), "failed", "not a plain"),
    # Product Ingestor
    ("ingest-list", "ingest.JAO", [], "failed", "is a JSON object"),
    ("ingest-missing", "ingest.JAO", {"ousUID": KNOWN, "timestamp": TS}, "failed", "needs productsDir"),
    ("ingest-unknown-ous", "ingest.JAO", {"ousUID": "uid://X9/X9/X7", "timestamp": TS, "productsDir": "d"},
     "failed", "no OUS"),
    ("ingest-not-verified", "ingest.JAO", {"ousUID": KNOWN, "timestamp": TS, "productsDir": "d"}, "failed",
     "not verified by QA2"),
    ("ingest-dir-option", "ingest.JAO", {"ousUID": KNOWN, "timestamp": TS, "productsDir": "-rf"}, "failed",
     "not a plain"),
    ("ingest-dir-dotdot", "ingest.JAO", {"ousUID": KNOWN, "timestamp": TS, "productsDir": "../../etc"},
     "failed", "not a plain"),
    ("ingest-bad-timestamp", "ingest.JAO", {"ousUID": KNOWN, "timestamp": "../..", "productsDir": "d"},
     "failed", "not a timestamp"),
    ("ingest-symlinked-product", "ingest.JAO", setup_symlinked_products, "failed", "symbolic link"),
]


@pytest.mark.parametrize("selector, body, status, text", [c[1:] for c in BUS_CASES],
                         ids=[c[0] for c in BUS_CASES])
def test_bad_message_is_refused_clearly_and_the_actor_keeps_serving(site, selector, body, status, text):
    if callable(body):
        body = body(site)
    msgback = uuid.uuid4().hex if selector == "xtss" else None
    expected = Reply(site.bus, msgback) if msgback else None
    (mid,) = site.bus.send(selector, body, msgback_id=msgback)
    doc = wait_for(lambda: site.handled(mid), timeout=60, what=f"the message on {selector} handled")
    assert doc["status"] == status, doc.get("error")
    if status == "failed":
        assert text in doc["error"] and len(doc["error"]) <= 2000
        assert "Traceback" not in doc["error"]
    else:
        wait_for(lambda: any(text in a.log() for a in site.procs.values()), what=f"the log to say {text!r}")
    if expected:
        reply = expected.take(timeout=30)
        assert reply is not None and text in reply.body["error"]
    assert all(a.alive() for a in site.procs.values()), site.actors.logs()


def test_symlinks_and_escapes_left_nothing_outside_the_caches(site):
    secret = "outside the cache: must never be archived"
    ngas = site.server.db(tables.NGAS)
    for doc_id in ngas.ids():
        assert secret.encode() not in Ngas(site.server).content(doc_id)
    # rsync copied the symlink as a symlink, and the cache server refuses to follow it.
    pulled = [p for p in site.jao_cache.rglob("product-0-X1-X1-Xsl1-*") if p.is_symlink()]
    assert pulled and all(os.readlink(p) == "/etc/passwd" for p in pulled)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", site.jao_port, timeout=10)
    conn.request("GET", "/" + str(pulled[0].relative_to(site.jao_cache)))
    resp = conn.getresponse()
    assert resp.status == 404 and b"root:" not in resp.read()
    escaped = [p for base in (site.root, Path("/tmp"), Path(__file__).resolve().parent.parent)
               for p in named_anywhere_under(base, MARK) if ".zip" not in p.name]
    assert escaped == []


def named_anywhere_under(base, part):
    """Every path under BASE whose name holds PART. Folders that vanish or cannot be
    read while we walk (other programs' temporary ones in /tmp) are passed by."""
    for folder, dirs, files in os.walk(base):   # os.walk ignores unreadable folders
        for name in dirs + files:
            if part in name:
                yield Path(folder) / name


# -- command lines

CLI_CASES = [
    ("launcher.py", [PROG, SCRIPT], "is not an OUS UID"),
    ("launcher.py", ["2015.1.00657.S<b>", "uid://X1/X1/Xc1"], "is not a program id"),
    ("launcher.py", [PROG, "uid://X1/X1/../../etc"], "is not an OUS UID"),
    ("launcher.py", [PROG, "uid://X1/X1/Xc1", "Pipeline<script>"], "is not a recipe"),
    ("launcher.py", [PROG, "uid://X1/X1/Xc1", "PipelineImaging", "--", "-a"], "is not an executive"),
    ("launcher.py", [PROG, "uid://X1/X1/Xc1", "PipelineImaging", "EU", "extra"], "unexpected extra argument"),
    ("launcher.py", [PROG, "uid://X1/X1/" + "X" * 5000], "is not an OUS UID"),
    ("dra.py", ["-a", "MARS"], "is not a location"),
    ("torque-maui.py", ["-x", "0"], "Invalid value"),
    ("torque-maui.py", ["-x", "many"], "Invalid value"),
    ("aqua-qa2.py", ["--auto", "X"], "Invalid value"),
    ("product-ingestor.py", ["-n", "-3"], "Invalid value"),
    ("replicated-cache.py", ["-p", "notaport"], "Invalid value"),
    ("xtss.py", ["-n", "0"], "Invalid value"),
    ("draws", ["send", "no such selector!", "a=1"], "invalid selector"),
    ("draws", ["send", "-rf", "a=1"], "No such option"),
    ("draws", ["rpc", "xtss", "{not json"], "JSON"),
    ("draws", ["purge", "--older-than", "forever"], "forever"),
]


@pytest.mark.parametrize("script, args, complaint", CLI_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CLI_CASES)])
def test_bad_command_line_is_one_clear_error(site, script, args, complaint):
    before = {d["_id"]: d["_rev"] for d in site.status.all()}
    res = site.actors.run(script, *args, timeout=60)
    assert res.returncode != 0
    assert complaint in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) <= 12
    assert {d["_id"]: d["_rev"] for d in site.status.all()} == before


# -- the prompts

PROMPT_LINES = [SCRIPT, "../../etc/passwd", "-rf", "uid://X1/X1/Xnot", "x" * 10000,
                f"{KNOWN}; rm -rf /", "uid://X1/X1/Xb0\x00", "%s%s%n", "{{7*7}}"]


@pytest.mark.parametrize("script, args", [("dra.py", ["-a", "EU"]), ("aqua-qa2.py", [])])
def test_prompts_refuse_bad_uids_and_exit_cleanly(site, script, args):
    res = site.actors.run(script, *args, input="\n".join(PROMPT_LINES) + "\n", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    refusals = res.stdout.count("is not an OUS UID") + res.stdout.count("is not in the list")
    assert refusals == len(PROMPT_LINES), res.stdout
    assert SCRIPT not in res.stdout.replace(repr(SCRIPT), "")   # only ever shown quoted


def test_qa2_question_asks_again_on_nonsense(site):
    uid = "uid://X1/X1/Xq1"
    site.procs["qa2"].kill()   # its --auto would review the OUS first
    site.status.reset(PROG, uid, "PipelineImaging")
    site.status.set_state(uid, "Processing")
    site.status.set_state(uid, "ReadyForReview")
    Reports(site.server).store(uid, TS, base64.b64encode(b"<PipelineAquaReport/>").decode(), "d", "EU")
    answers = ["Z", SCRIPT, "", "yes", "C"]
    res = site.actors.run("aqua-qa2.py", input=f"{uid}\n" + "\n".join(answers) + "\n", timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("Please answer one of F, P, S, C") == 4, res.stdout
    assert site.status.get(uid)["state"] == "ReadyForReview"   # Cancel: back where it was
    site.procs["qa2"] = site.actors.start("aqua-qa2.py", "--auto", "P", name="qa2-again")


# -- afterwards

def test_a_good_ous_still_flows_and_the_bystander_is_untouched(site):
    uid = "uid://X1/X1/Xgood"
    res = site.actors.run("launcher.py", PROG, uid, "PipelineCalibration")
    assert res.returncode == 0, res.stderr
    wait_for(lambda: site.status.get(uid)["state"] == "Delivered", timeout=120, what="the good OUS Delivered")
    assert site.status.get(BYSTANDER) == site.bystander
    assert all(a.alive() for a in site.procs.values())
    failed = site.server.db(tables.MSGQ).find({"status": "failed", "body.ousUID": uid})
    assert failed == []
