"""Hostile peers (issue 14): forged and malformed documents written straight into the tables.

Every table is replicated between sites, so any document may come from a
peer with a bug or from someone who should not write at all. One site runs
for the module, every actor a real process. Each row of the table below
writes one such document and checks that it is

* refused: never acted on (the OUS it names is unchanged, its message is
  marked failed with the reason and no work is done);
* shown: listed by ``shapes.refused`` (what the dashboard shows) with its
  table, id and reason, and logged by the actor that read it, once;
* survived: every actor alive.

The fuzz test then writes 500 random documents of random shapes and types
into each table (``DRAWS_FUZZ_SEED`` repeats a run; the seed is printed).
Both end with a good OUS Delivered with the exact end state of contract §5,
the bystander OUSs unchanged and every actor alive and still taking work.
"""

import base64
import hashlib
import json
import os
import random
import string
import time
import uuid
from pathlib import Path

import pytest

from draws import ids, products, shapes, tables
from draws.actors.cleaner import clear_all
from draws.archive import Reports
from draws.bus import Bus
from draws.couch import Server
from draws.ous import StatusTable, encode_uid
from draws.exceptions import RemoteError
from draws.timestamps import timestamp
from draws.xtss import XtssClient
from support import Actors, once, site_env, wait_for
from test_faults import Fleet
from test_lifecycle import assert_cached, assert_delivered

PROG = "2015.1.00657.S"
TS = "2018-07-24T09:49:20.902"
DONE = "uid://X1/X1/Xdone"       # a Delivered OUS: bystander, and the victim of forged documents
IDLE = "uid://X1/X1/Xidle"       # ReadyForProcessing with ManualCalibration: bystander
KNOWN = "uid://X1/X1/Xknown"     # ManualCalibration: the target of forged messages
LISTENED = ("xtss", "pipeline.process.EU", "cached.JAO", "cached.EU", "pipeline.report.JAO", "ingest.JAO")
REPORT_XML = b"<PipelineAquaReport>the real one</PipelineAquaReport>"


class HostileSite(Fleet):
    """Every single-host actor, DRA and AQUA/QA2 on --auto, with a Delivered bystander."""

    def __init__(self, root, couch_url):
        server = Server(couch_url, max_wait=30)
        tables.ensure(server)
        clear_all(server)
        env = dict(site_env(couch_url, root), DRAWS_RPC_TIMEOUT="30")
        super().__init__(Actors(env, root), env, server)
        self.bus = Bus(server, actor="hostile-test")
        self.forged = {}   # (table, id) -> revision of each forged document written
        self.launch(DONE, "PipelineCalibration")
        self.wait_delivered([DONE], timeout=120)
        self.status.reset(PROG, IDLE, "ManualCalibration")
        self.status.reset(PROG, KNOWN, "ManualCalibration")
        self.bystanders = self.snapshot()
        assert shapes.refused(self.server) == []   # what our own actors write has its table's shape

    def launch(self, uid, *args):
        res = self.actors.run("launcher.py", PROG, uid, *args)   # (the environment is JAO's)
        assert res.returncode == 0, res.stderr

    def snapshot(self):
        """The bystanders' documents, every table: id -> revision."""
        done_products = self.server.db(tables.DELIVERY).get(encode_uid(DONE))["dataProducts"]
        docs = [self.status.get(DONE), self.status.get(IDLE), self.server.db(tables.DELIVERY).get(encode_uid(DONE))]
        docs += self.server.db(tables.REPORTS).find({"ousUID": DONE})
        docs += self.server.db(tables.METADATA).find({"ousUID": DONE})
        docs += [self.server.db(tables.NGAS).get(ids.doc_id(name)) for name in done_products]
        return {d["_id"]: d["_rev"] for d in docs}

    def db(self, table):
        return self.server.db(table)

    def put(self, table, doc):
        return self.db(table).put(doc)

    def forge(self, table, doc):
        """Write a forged document; it must stay as written (forged_unchanged)."""
        self.forged[(table, doc["_id"])] = self.put(table, doc)["_rev"]
        return doc["_id"]

    def forged_unchanged(self):
        return {key: self.db(key[0]).get(key[1])["_rev"] for key in self.forged} == self.forged

    def message(self, selector, body, **fields):
        """A msgq message as a peer might write it, FIELDS replacing the usual ones."""
        doc = self.bus.new_message(selector, body)
        doc.update(fields)
        return {k: v for k, v in doc.items() if v is not ...}

    def refusal(self, table, doc_id):
        return next((r for r in shapes.refused(self.server, [table]) if r["id"] == doc_id), None)

    def logged(self, name, text):
        return self.procs[name].log().count(text)

    def dead(self):
        return [name for name, actor in self.procs.items() if not actor.alive()]


# One site (database) for the whole file: its tests run in one worker, in turn
# (`make test` runs tests in two workers; see the Makefile).
pytestmark = pytest.mark.xdist_group("test_hostile")


@pytest.fixture(scope="module")
def site(couch_url, tmp_path_factory):
    s = HostileSite(tmp_path_factory.mktemp("hostile"), couch_url)
    yield s
    s.actors.stop_all()
    s.bus.close()


def ous(uid, **change):
    doc = {"_id": encode_uid(uid), "entityId": uid, "progID": PROG, "state": "ReadyForProcessing",
           "substate": "PipelineImaging", "flags": {}, "timestamp": timestamp(), "history": []}
    doc.update(change)
    return {k: v for k, v in doc.items() if v is not ...}


def ingested(site, uid):
    """UID made DeliveryInProgress / ProductsIngested (the Data Tracker's turn), by hand."""
    site.status.reset(PROG, uid, "PipelineCalibration")
    site.status.set_state(uid, "DeliveryInProgress")
    site.status.set_substate(uid, "ProductsIngested")


def xtss_answers(site):
    """XTSS still serves: a request from us is answered."""
    return isinstance(XtssClient(site.bus, timeout=30).ask_ouss("Delivered"), list)


def report_thread_answers(site):
    """AQUA/QA2's report receiver still takes work: a good report gets stored."""
    uid = f"uid://X1/X1/Xr{uuid.uuid4().hex[:6]}"
    site.bus.send("pipeline.report.JAO", {"ousUID": uid, "timestamp": TS, "source": "EU",
                                          "report": base64.b64encode(REPORT_XML).decode(),
                                          "productsDir": "some_dir"})
    wait_for(lambda: Reports(site.server).latest(uid), timeout=30, what="a good report stored after it")
    return True


# Each row: (id, table, write(site) -> doc id, text in the reason, the actor that reads and logs it
# (None: no actor reads it), check(site) -> truthy when nothing was done with it, beyond the
# forged documents themselves staying as written). An OUS ReadyForProcessing without a recipe
# is read by the AQUA Batch Helper itself, from the table (as the original's does, spec §9).

def forged_message(selector, body, **fields):
    def write(site):
        doc = site.message(selector, body, **fields)
        site.put(tables.MSGQ, doc)
        return doc["_id"]
    return write


SET_STATE = {"operation": "set-state", "ousUID": KNOWN, "value": "Processing"}
GOOD_REPORT = {"ousUID": KNOWN, "timestamp": TS, "source": "EU", "productsDir": "x_dir",
               "report": base64.b64encode(REPORT_XML).decode()}


def message_refused(site, doc_id):
    doc = wait_for(lambda: (lambda d: d if d.get("status") == "failed" else None)(
        site.db(tables.MSGQ).get(doc_id)), timeout=30, what="the message marked failed")
    return doc["consumed"] is True and doc["error"].startswith(shapes.REFUSED)


def known_untouched(site):
    """No forged message about KNOWN was acted on: no state change, no report stored."""
    return site.status.get(KNOWN)["state"] == "ReadyForProcessing" and not Reports(site.server).for_ous(KNOWN)


def forged_doc(table, doc):
    def write(site):
        return site.forge(table, dict(doc))
    return write


def xtss_refuses_to_change(site, uid):
    with pytest.raises(RemoteError, match="is refused: flags"):
        XtssClient(site.bus, timeout=30).ask_set_exec(uid, "EU")
    return True


def no_message_about(uid):
    return lambda site: not site.db(tables.MSGQ).find({"body.ousUID": uid})


def not_delivered(uid):
    return lambda site: site.state(uid) == "DeliveryInProgress"


def write_ingested(uid, shown, delivery=None, ngas=None, metadata=None):
    """UID waiting for the Data Tracker, with the forged DELIVERY, NGAS and METADATA documents;
    returns the id of the one of table SHOWN."""
    def write(site):
        ingested(site, uid)
        docs = {tables.NGAS: ngas, tables.METADATA: metadata, tables.DELIVERY: delivery}
        for table, doc in docs.items():
            if doc:
                site.forge(table, dict(doc))
        return docs[shown]["_id"]
    return write


FORGED_REQUEST = {"_id": "2018-07-24T09_49_20.902-" + "f" * 32, "creationTimestamp": TS, "selector": "xtss",
                  "consumed": False, "body": {"operation": "set-state", "ousUID": DONE, "value": "Processing"}}
PASSWD = "../../../../../../../../../../etc/passwd"
PASSWD_SUM = "sha256:" + hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()


def delivery(uid, products_list):
    return {"_id": encode_uid(uid), "progID": PROG, "ousUID": uid, "timestamp": timestamp(),
            "dataProducts": products_list, "complete": True}


ROWS = [
    ("xtss-attempts-string", tables.MSGQ, forged_message("xtss", SET_STATE, msgbackID=uuid.uuid4().hex,
                                                          attempts="1"),
     "attempts", "xtss", known_untouched),
    ("xtss-attempts-null", tables.MSGQ, forged_message("xtss", SET_STATE, msgbackID=uuid.uuid4().hex,
                                                        attempts=None),
     "attempts", "xtss", known_untouched),
    ("report-attempts-string", tables.MSGQ, forged_message("pipeline.report.JAO", GOOD_REPORT, attempts="1"),
     "attempts", "qa2", known_untouched),
    ("report-attempts-null", tables.MSGQ, forged_message("pipeline.report.JAO", GOOD_REPORT, attempts=None),
     "attempts", "qa2", known_untouched),
    ("consumed-string", tables.MSGQ, forged_message("pipeline.report.JAO", GOOD_REPORT, consumed="false"),
     "consumed", "qa2", known_untouched),
    ("claimed-lease-garbage", tables.MSGQ, forged_message("ingest.JAO", {"ousUID": KNOWN}, consumed=True,
                                                          status="claimed", leaseExpires=[1], attempts=-2),
     "attempts", "ingestor", known_untouched),
    ("ous-without-entityId", tables.STATUS,
     forged_doc(tables.STATUS, ous("uid://X1/X1/Xnoent1", entityId=..., substate=None)),
     "no entityId", "batch-helper", None),
    ("ous-without-entityId-with-recipe", tables.STATUS,
     forged_doc(tables.STATUS, ous("uid://X1/X1/Xnoent2", entityId=...)),
     "no entityId", "xtss", None),
    ("ous-id-not-its-uid", tables.STATUS,
     forged_doc(tables.STATUS, ous("uid://X1/X1/Xghost", _id="forged-ghost")),
     "_id", "xtss", no_message_about("uid://X1/X1/Xghost")),
    ("ous-forges-a-delivered-one", tables.STATUS,
     forged_doc(tables.STATUS, ous(DONE, _id="uid___X1_X1_Xforged")),
     "_id", "xtss", lambda site: site.snapshot() == site.bystanders),
    ("ous-forged-outbox", tables.STATUS,   # XTSS's reconciler sends an outbox left unsent
     forged_doc(tables.STATUS, ous(DONE, _id="uid___X1_X1_Xoutbox", state="Verified", outbox={
         "step": "s1", "sent": False, "messages": [dict(FORGED_REQUEST)]})),
     "_id", "xtss", lambda site: not site.db(tables.MSGQ).get_or_none(FORGED_REQUEST["_id"])),
    ("ous-huge-substate", tables.STATUS,
     forged_doc(tables.STATUS, ous("uid://X1/X1/Xhuge", substate="x" * 1_000_000)),
     "substate", None, None),
    ("ous-html-progid", tables.STATUS,
     forged_doc(tables.STATUS, ous("uid://X1/X1/Xhtml", progID="<script>alert(1)</script>", substate="")),
     "progID", "batch-helper", None),
    ("ous-state-123", tables.STATUS, forged_doc(tables.STATUS, ous("uid://X1/X1/X123", state=123)),
     "state", None, None),
    ("ous-flags-not-object", tables.STATUS,
     forged_doc(tables.STATUS, ous("uid://X1/X1/Xflags", flags="EU", substate="")),
     "flags", "batch-helper", lambda site: xtss_refuses_to_change(site, "uid://X1/X1/Xflags")),
    ("delivery-dataProducts-5", tables.DELIVERY,
     write_ingested("uid://X1/X1/Xdp5", tables.DELIVERY, delivery=delivery("uid://X1/X1/Xdp5", 5)),
     "dataProducts", "tracker", not_delivered("uid://X1/X1/Xdp5")),
    ("delivery-names-a-file-outside", tables.DELIVERY,
     write_ingested("uid://X1/X1/Xpw", tables.DELIVERY, delivery=delivery("uid://X1/X1/Xpw", [PASSWD]),
                    ngas={"_id": PASSWD, "writeTimestamp": timestamp(), "size": 10, "checksum": PASSWD_SUM},
                    metadata={"_id": PASSWD, "progID": PROG, "ousUID": "uid://X1/X1/Xpw", "timestamp": TS}),
     "dataProducts", "tracker", not_delivered("uid://X1/X1/Xpw")),
    ("ngas-name-outside", tables.NGAS,
     forged_doc(tables.NGAS, {"_id": "../../etc/passwd", "writeTimestamp": TS, "size": 3,
                              "checksum": PASSWD_SUM}),
     "plain file name", None, None),
    ("metadata-leads-outside", tables.METADATA,
     write_ingested("uid://X1/X1/Xmeta", tables.METADATA,
                    delivery=delivery("uid://X1/X1/Xmeta", products.product_names("uid://X1/X1/Xmeta", TS)),
                    metadata={"_id": products.product_names("uid://X1/X1/Xmeta", TS)[0],
                              "progID": "../../../../../../etc", "ousUID": "uid://X1/X1/Xmeta",
                              "timestamp": TS}),
     "progID", None, not_delivered("uid://X1/X1/Xmeta")),
    ("ngas-without-bytes", tables.NGAS,
     forged_doc(tables.NGAS, {"_id": "product-0-X1-X1-Xnob-2018-07-24T09:49:20.902.data",
                              "writeTimestamp": TS, "size": 3, "checksum": "sha256:" + "0" * 64}),
     "no bytes", None, None),
    ("ngas-encoded-not-base64", tables.NGAS,
     forged_doc(tables.NGAS, {"_id": "product-9-X1-X1-Xb64.data", "writeTimestamp": TS,
                              "encodedContents": "%%% not base64 %%%"}),
     "base64", None, None),
]


@pytest.mark.parametrize("table, write, text, reader, check", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_forged_document_is_refused_shown_and_survived(site, table, write, text, reader, check):
    doc_id = write(site)
    refusal = wait_for(lambda: site.refusal(table, doc_id), timeout=30, what=f"{doc_id} listed as refused")
    assert text in refusal["reason"], refusal
    if reader:
        wait_for(lambda: site.logged(reader, f"refused {table} document {doc_id!r}"), timeout=30,
                 what=f"{reader} to log the refusal")
    if table == tables.MSGQ:
        assert message_refused(site, doc_id)
    time.sleep(1)   # what a reader would do with it, it has done by now
    assert check is None or check(site)
    assert site.forged_unchanged()   # nobody acted on it
    if reader:   # once, however often it read it
        assert site.logged(reader, f"refused {table} document {doc_id!r}") == 1
    assert not site.dead(), site.actors.logs()
    assert xtss_answers(site)


# The documented forms, this project's and the original mockup's (contract §2, §9), are well formed.
ORIGINAL_FORMS = [
    (tables.STATUS, ous("uid://X1/X1/Xb0", substate=None, history=...)),
    (tables.STATUS, ous("uid://X1/X1/Xb0", _id="uid:__X1_X1_Xb0", state="DeliveryInProgress",
                        substate="IngestingProducts", flags={"PL_PROCESSING_EXECUTIVE": "EU"})),
    (tables.MSGQ, {"_id": "2018-07-24T09_49_20.902-" + "0" * 32, "creationTimestamp": "2018-07-24T06:49:20.902",
                   "originIP": "10.0.0.1", "selector": "xtss", "consumed": False, "msgbackID": "a" * 32,
                   "body": json.dumps(SET_STATE)}),
    (tables.MSGQ, {"_id": "state.change.*", "members": ["a", "b.c"]}),
    (tables.REPORTS, {"_id": f"2018-07-24T09_49_20.902.uid___X1_X1_Xb0", "ousUID": "uid://X1/X1/Xb0",
                      "timestamp": TS, "encodedReport": "PHg+PC94Pg==", "productsDir": "2015.1.00657.S_x",
                      "source": "/var/draws/eu-cache"}),
    (tables.METADATA, {"_id": "product-0-X1-X1-Xb0-2018-07-24T09_49_20.902.data", "progID": PROG,
                       "ousUID": "uid://X1/X1/Xb0", "timestamp": TS}),
    (tables.DELIVERY, delivery("uid://X1/X1/Xb0", [])),
    (tables.NGAS, {"_id": "product-0-X1-X1-Xb0-2018-07-24T09_49_20.902.data", "writeTimestamp": TS,
                   "encodedContents": "aGVsbG8="}),
]


@pytest.mark.parametrize("table, doc", ORIGINAL_FORMS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(ORIGINAL_FORMS)])
def test_the_documented_forms_are_well_formed(table, doc):
    assert shapes.reason(table, doc) is None


def test_receivers_still_take_work_after_forged_messages(site):
    assert report_thread_answers(site)
    assert xtss_answers(site)
    assert site.status.get(KNOWN)["state"] == "ReadyForProcessing"   # no forged set-state done
    assert not site.dead()


def test_a_forged_newer_report_is_never_reviewed(site):
    """A report that is not base64, newer than the real one: --auto passes the real one."""
    uid = "uid://X1/X1/Xnewer"
    forged = "2099-01-01T00:00:00.000"
    site.put(tables.REPORTS, {"_id": f"{forged}.{encode_uid(uid)}", "ousUID": uid, "timestamp": forged,
                              "encodedReport": "%%% not base64 %%%", "productsDir": "nowhere_dir",
                              "source": "EU"})
    site.launch(uid, "PipelineCalibration")
    site.wait_delivered([uid], timeout=120)
    real = Reports(site.server).for_ous(uid)
    real = [r for r in real if r["timestamp"] != forged]
    assert len(real) == 1
    dlv = site.db(tables.DELIVERY).get(encode_uid(uid))
    assert dlv["dataProducts"] == sorted(products.product_names(uid, real[0]["timestamp"]))
    assert site.refusal(tables.REPORTS, f"{forged}.{encode_uid(uid)}")["reason"].startswith("encodedReport")


def test_a_forged_newer_report_at_the_qa2_prompt(site):
    """The interactive AQUA/QA2 shows the real report, never a traceback."""
    uid = "uid://X1/X1/Xprompt"
    site.procs["qa2"].kill()   # its --auto would review the OUS first
    try:
        site.status.reset(PROG, uid, "PipelineImaging")
        site.status.set_state(uid, "Processing")
        site.status.set_state(uid, "ReadyForReview")
        Reports(site.server).store(uid, TS, base64.b64encode(REPORT_XML).decode(), "x_dir", "EU")
        forged = "2099-01-01T00:00:00.000"
        site.put(tables.REPORTS, {"_id": f"{forged}.{encode_uid(uid)}", "ousUID": uid, "timestamp": forged,
                                  "encodedReport": "%%% not base64 %%%", "productsDir": "x_dir", "source": "EU"})
        res = site.actors.run("aqua-qa2.py", input=f"{uid}\nC\n", timeout=60)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr + res.stdout
        assert "the real one" in res.stdout and f"run {TS}" in res.stdout
        assert site.state(uid) == "ReadyForReview"
        site.status.set_state(uid, "ProcessingProblem")   # out of the way of --auto
    finally:
        site.start("qa2")


def assert_good_ous_delivered(site, uid):
    """A new OUS goes through the whole life cycle to the exact end state of contract §5."""
    site.launch(uid, "PipelineCalibration")
    site.wait_delivered([uid], timeout=120)
    report = assert_delivered(site, uid)
    wait_for(lambda: not site.db(tables.MSGQ).find({"consumed": False, "body.ousUID": uid}),
             what="no unconsumed message of the good OUS")
    assert not site.db(tables.MSGQ).find({"status": "failed", "body.ousUID": uid})
    assert_cached(site, uid, report)


def assert_site_whole(site):
    assert site.snapshot() == site.bystanders
    assert site.forged_unchanged()
    assert not site.dead(), site.actors.logs()
    for name, actor in site.procs.items():
        assert "Traceback" not in actor.log(), f"{name}:\n{actor.log()[-3000:]}"


def test_afterwards_a_good_ous_is_delivered_and_the_bystanders_are_untouched(site):
    assert_good_ous_delivered(site, "uid://X1/X1/Xgood")
    assert_site_whole(site)
    listed = shapes.counts(shapes.refused(site.server))
    assert set(listed) == {tables.MSGQ, tables.STATUS, tables.REPORTS, tables.METADATA,
                           tables.DELIVERY, tables.NGAS}, listed


# -- the fuzz test

FUZZ_PER_TABLE = 500
FIELDS = {
    tables.MSGQ: ["selector", "consumed", "body", "attempts", "creationTimestamp", "originIP", "msgbackID",
                  "status", "leaseExpires", "members", "consumedBy"],
    tables.STATUS: ["entityId", "progID", "state", "substate", "flags", "timestamp", "history"],
    tables.REPORTS: ["ousUID", "timestamp", "encodedReport", "productsDir", "source"],
    tables.METADATA: ["progID", "ousUID", "timestamp"],
    tables.DELIVERY: ["progID", "ousUID", "timestamp", "dataProducts", "complete"],
    tables.NGAS: ["writeTimestamp", "size", "checksum", "encodedContents"],
}
BODY_FIELDS = ["operation", "ousUID", "value", "state", "substate", "progID", "recipe", "fileType",
               "cachedAt", "name", "timestamp", "source", "report", "productsDir"]
# Plausible values, so that some documents get past the first checks (never a bystander's UID in a
# message: a well-formed request about it would be a real one).
WORDS = ["set-state", "set-substate", "set-exec", "clear-exec", "get-ouss-by-state-substate",
         "ReadyForProcessing", "Processing", "ReadyForReview", "Delivered", "PipelineImaging",
         "ManualCalibration", "weblog", "productsdir", "EU", "JAO", "MARS", PROG, TS,
         "uid://X1/X1/Xfuzz1", "uid://X1/X1/Xfuzz2", "../../etc/passwd", "-rf", "--remove-source-files",
         "<script>alert(1)</script>", "^$", "((", "sha256:" + "0" * 64, "aGVsbG8=", "%%%", "",
         "product-0-X1-X1-Xfuzz1-2018-07-24T09:49:20.902.data", "x_dir", "true", "false", "null"]
FORGED_UIDS = [DONE, IDLE, "uid://X1/X1/Xfuzzgood"]   # in status documents only: forged entityIds


def fuzz_value(rng, depth=0, words=WORDS):
    kind = rng.randrange(12 if depth < 2 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 5, 2 ** 63, 3.5, -0.0])
    if kind in (3, 4, 5):
        return rng.choice(words)
    if kind == 6:
        return "".join(rng.choice(string.printable + "éλ\u202e\x00") for _ in range(rng.randrange(40)))
    if kind == 7:
        return rng.choice(["x" * 5000, "é" * 5000, "\\" * 100])
    if kind in (8, 9):
        return [fuzz_value(rng, depth + 1, words) for _ in range(rng.randrange(5))]
    return {rng.choice(BODY_FIELDS + ["", "$gt", "a.b"]): fuzz_value(rng, depth + 1, words)
            for _ in range(rng.randrange(6))}


def fuzz_id(rng, table, n):
    form = rng.randrange(20)   # 0: the id of an OUS (only the first such write is stored)
    if form == 0 and table == tables.STATUS:
        return encode_uid(rng.choice(["uid://X1/X1/Xfuzz1", "uid://X1/X1/Xfuzz2", "uid://X1/X1/Xfuzzgood"]))
    if form < 5:
        return f"fuzz{n}-../../{rng.randrange(100)}"
    if form < 10:
        return f"fuzz{n}-" + "".join(rng.choice(string.ascii_letters + ":/. é") for _ in range(rng.randrange(30)))
    return f"fuzz{n}-{uuid.UUID(int=rng.getrandbits(128)).hex}"


def fuzz_doc(rng, table, n):
    doc = {"_id": fuzz_id(rng, table, n)}
    words = WORDS + FORGED_UIDS if table == tables.STATUS else WORDS
    for name in FIELDS[table]:
        if rng.random() < 0.75:
            doc[name] = fuzz_value(rng, words=words)
    if table == tables.MSGQ and rng.random() < 0.7:
        doc["selector"] = rng.choice(LISTENED)
    if table == tables.STATUS and rng.random() < 0.5:
        doc["entityId"] = rng.choice(FORGED_UIDS)
    for _ in range(rng.randrange(3)):   # fields nobody expects
        doc[rng.choice(["x", "é", "$where", "a.b", "consumedAt"])] = fuzz_value(rng)
    return doc


@once
def test_fuzz_random_documents_into_every_table(site):
    seed = int(os.environ.get("DRAWS_FUZZ_SEED") or random.randrange(1_000_000))
    print(f"fuzz seed {seed} (DRAWS_FUZZ_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    began = time.monotonic()
    written = {}
    for table in tables.ALL:
        docs = [fuzz_doc(rng, table, n) for n in range(FUZZ_PER_TABLE)]
        ids = []
        for start in range(0, len(docs), 100):
            batch = docs[start:start + 100]
            results = site.db(table).bulk(batch)
            ids += [r["id"] for r in results if "error" not in r]
        written[table] = ids
        assert len(ids) > FUZZ_PER_TABLE * 0.8, f"{table}: only {len(ids)} of the random documents stored"

    # Every message on a selector somebody listens to, not taken already, ends handled or refused.
    def left():
        return [d["_id"] for d in site.db(tables.MSGQ).find({"selector": {"$in": list(LISTENED)},
                                                             "consumed": {"$ne": True}})]
    wait_for(lambda: not left(), timeout=90, interval=1,
             what="every random message on a listened selector taken (left: %s)" % left()[:5])
    print(f"random documents written and every message taken in {time.monotonic() - began:.0f} s")

    assert_good_ous_delivered(site, "uid://X1/X1/Xfuzzgood")
    assert_site_whole(site)
    listed = shapes.counts(shapes.refused(site.server))
    for table in tables.ALL:
        assert listed.get(table, 0) > FUZZ_PER_TABLE // 2, (table, listed)
    print("refused documents:", json.dumps(listed))
