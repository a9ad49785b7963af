"""Beside the original mockup (spec §9): any mix of its actors and ours delivers an OUS.

Each test plays the original's actors of one mix with tests/original.py
(documents and messages in the original's exact shapes, an XTSS with its
semantics), runs ours as real processes, and checks the end state of spec §5.
"""

import base64
import shutil
import subprocess
import threading
import uuid
import zipfile

import pytest

from draws import products, tables
from draws.archive import Delivery, Metadata, Ngas, Reports, checksum
from draws.actors.pipeline import Pipeline
from draws.bus import Bus
from draws.config import Settings
from draws.ous import EXECUTIVE_FLAG, INGESTION_SUBSTATES, StatusTable
from draws.receiver import Receiver
from draws.retention import purge
from draws.site import Site
from draws.timestamps import at
from original import (OriginalBus, OriginalXtss, archive, give_recipes, launch, local_timestamp,
                      original_id, ous_id, report_doc)
from support import free_port, wait_for

PROG = "2015.1.00657.S"
RUN = "2018-07-24T09:49:20.902"


# -- our side
class Ours:
    """This project's single-host actors (draws.site's table): ONLY those, or all
    but those the test plays (WITHOUT); never the dashboard."""

    def __init__(self, actors, tmp_path, without=(), only=None):
        # The test's URL, with its credentials (a Server shows and gives none).
        self.site = Site(tmp_path / "site", actors.env["DRAWS_COUCHDB_URL"],
                         (free_port(), free_port(), free_port()),
                         knobs={"DRAWS_DELAY_SCALE": "0", "DRAWS_FAILURE_RATE": "0", "DRAWS_SEED": "1"})
        self.jao_cache, self.eu_cache = self.site.jao_cache, self.site.eu_cache
        for cache in (self.jao_cache, self.eu_cache):
            (cache / "weblogs").mkdir(parents=True)
        self.procs = {name: actors.start(argv[0], *argv[1:], name=name, env=self.site.env(extra))
                      for name, extra, argv in self.site.actors()
                      if name not in without and name != "dashboard" and (only is None or name in only)}

    def log(self, name):
        return self.procs[name].log()


def state(server, uid):
    doc = server.db(tables.STATUS).get_or_none(ous_id(uid))
    return doc and doc.get("state")


def wait_state(server, uid, wanted, timeout=120):
    wait_for(lambda: state(server, uid) == wanted, timeout,
             what=lambda: f"{uid} {wanted} (it is {state(server, uid)})")


def assert_end_state(server, uid):
    """Spec §5, read the way the original reads it (ids with "_" for ":")."""
    ous = server.db(tables.STATUS).get(ous_id(uid))
    assert (ous["state"], ous["substate"] or "") == ("Delivered", "")
    assert EXECUTIVE_FLAG not in (ous.get("flags") or {})
    [report] = server.db(tables.REPORTS).find({"ousUID": uid})
    delivery = server.db(tables.DELIVERY).get(ous_id(uid))
    assert delivery["complete"] is True
    assert delivery["dataProducts"] == products.product_names(uid, report["timestamp"])
    ngas = server.db(tables.NGAS)
    files = delivery["dataProducts"] + [products.weblog_name(uid, report["timestamp"])]
    assert sorted(ngas.ids()) == sorted(original_id(name) for name in files)
    assert all(Ngas.checksum_of(ngas.get(original_id(name))) for name in files)
    assert sorted(d["_id"] for d in server.db(tables.METADATA).find({"ousUID": uid})) == \
        sorted(original_id(name) for name in delivery["dataProducts"])
    wait_for(lambda: not server.db(tables.MSGQ).find({"consumed": False}), 30, what="every message consumed")
    for table in tables.ALL:
        assert not [i for i in server.db(table).ids() if ":" in i], f"an id with ':' in {table}"


def give_pipeline_recipe(server, bus, uid):
    """Wait for the Batch Helper's recipe; a ManualCalibration one is replaced, as a person would."""
    wait_for(lambda: server.db(tables.STATUS).get(ous_id(uid)).get("substate"), 60, what="a recipe")
    if server.db(tables.STATUS).get(ous_id(uid))["substate"] == "ManualCalibration":
        bus.xtss("set-substate", uid, "PipelineImaging")


# -- the mixes
@pytest.mark.parametrize("xtss, recipe", [("ours", None), ("original", None), ("original", "PipelineImaging")])
def test_the_original_launcher_and_xtss_with_our_actors(server, actors, tmp_path, xtss, recipe):
    """Rows 'original launcher, our actors' and 'our actors, the original XTSS': a
    null substate gets a recipe though the original XTSS never finds it, and the
    substate ends empty though the original XTSS never empties it (launched with a
    recipe or without)."""
    uid = "uid://X1/X1/Xo1"
    ours = Ours(actors, tmp_path, without=("xtss",) if xtss == "original" else ())
    double = OriginalXtss(server).start() if xtss == "original" else None
    try:
        launch(server, PROG, uid, recipe)
        give_pipeline_recipe(server, OriginalBus(server), uid)
        wait_state(server, uid, "Delivered")
        assert_end_state(server, uid)
    finally:
        if double:
            double.stop()
    if double:   # our tracker empties the substate itself, before Delivered
        last = [(b["operation"], b.get("value")) for b in double.served if b.get("ousUID") == uid][-3:]
        assert last == [("clear-exec", None), ("set-substate", ""), ("set-state", "Delivered")]
        log = ours.log("data-tracker")
        assert log.count("XTSS lacks guarded transitions") == 1 and "WARNING" in log


def test_the_original_batch_helper_with_our_server_and_actors(server, actors, tmp_path):
    """Row 'the original AQUA Batch Helper, our embedded server': its field-level $or
    query is answered (PouchDB Server 4.2.0 said 400 and the helper exited)."""
    uid = "uid://X1/X1/Xo8"
    Ours(actors, tmp_path, without=("aqua-batch-helper",))
    launch(server, PROG, uid)
    assert give_recipes(server, "PipelineImaging") == [uid]
    wait_state(server, uid, "Delivered")
    assert_end_state(server, uid)
    assert give_recipes(server, "PipelineImaging") == []   # a Delivered OUS is no longer found


def test_the_original_dra_and_qa2_with_our_actors(server, actors, tmp_path):
    uid = "uid://X1/X1/Xo2"
    ours = Ours(actors, tmp_path, without=("dra", "aqua-qa2"))
    bus = OriginalBus(server)
    launch(server, PROG, uid)
    give_pipeline_recipe(server, bus, uid)
    [ous] = [o for o in bus.xtss("get-ouss-by-state-substate", state="ReadyForProcessing",
                                 substate="Pipeline.*") if o["entityId"] == uid]
    # The original DRA, given the UID at its prompt.
    assert bus.xtss("set-exec", uid, "EU") == 201 and bus.xtss("set-state", uid, "Processing") == 201
    bus.send("pipeline.process.EU", {"progID": PROG, "ousUID": uid, "recipe": ous["substate"]})
    # The original AQUA/QA2: its background part stores the report, a person passes it.
    message = wait_for(lambda: bus.take("pipeline.report.JAO"), 120, what="the report message")
    body = message["body"]
    assert body["source"] == "EU"
    server.db(tables.REPORTS).put(report_doc(uid, body["timestamp"], body["source"], body["report"],
                                             body["productsDir"]))
    wait_state(server, uid, "ReadyForReview")
    for step in ("Reviewing", "Verified"):
        bus.xtss("set-state", uid, step)
    bus.send("ingest.JAO", {"ousUID": uid, "timestamp": body["timestamp"], "productsDir": body["productsDir"]})
    # It sets DeliveryInProgress seconds later: the ingestion steps start while it is Verified.
    wait_for(lambda: server.db(tables.STATUS).get(ous_id(uid))["substate"] in INGESTION_SUBSTATES, 60,
             what="ingestion under way")
    assert state(server, uid) == "Verified"
    bus.xtss("set-state", uid, "DeliveryInProgress")
    wait_state(server, uid, "Delivered")
    assert_end_state(server, uid)
    assert "Delivered: its 5 products are here" in ours.log("data-tracker")


def test_the_original_cache_replicator_at_jao(server, actors, tmp_path):
    uid = "uid://X1/X1/Xo3"
    ours = Ours(actors, tmp_path, without=("cache-jao",))
    bus, done = OriginalBus(server), threading.Event()

    def replicate():   # the original's replicated-cache.py at JAO: rsync, expand, archive the weblog
        while not done.is_set():
            message = bus.take("cached.JAO")
            if message is None:
                done.wait(0.1)
                continue
            name = message["body"]["name"]
            source = ours.eu_cache / name
            subprocess.run(["rsync", "-a", str(source) + ("/" if source.is_dir() else ""),
                            str(ours.jao_cache / name)], check=True)
            if message["body"]["fileType"] == "weblog":
                with zipfile.ZipFile(source) as z:
                    z.extractall(ours.jao_cache / "weblogs")
                archive(server, name, source.read_bytes())

    thread = threading.Thread(target=replicate, daemon=True)
    thread.start()
    try:
        launch(server, PROG, uid)
        give_pipeline_recipe(server, bus, uid)
        wait_state(server, uid, "Delivered")
    finally:
        done.set()
        thread.join(10)
    assert_end_state(server, uid)
    [weblog] = [d for d in server.db(tables.NGAS).find({"encodedContents": {"$gt": None}})]
    assert weblog["_id"].startswith("weblog-") and "checksum" not in weblog


def test_the_original_pipeline_driver_report_is_reviewed_and_delivered(server, actors, tmp_path):
    """The original Torque/Maui, Pipeline Driver and Pipeline: the report's source is the cache path."""
    uid = "uid://X1/X1/Xo4"
    ours = Ours(actors, tmp_path, without=("torque-maui", "dra"))
    bus = OriginalBus(server)
    StatusTable(server).reset(PROG, uid, "PipelineImaging")
    bus.xtss("set-exec", uid, "EU")
    bus.xtss("set-state", uid, "Processing")
    # Its Pipeline's products (spec §4), copied by its driver into the EU cache.
    run = local_timestamp()
    made = Pipeline(Settings(delay_scale=0, failure_rate=0), tmp_path, PROG, uid, "PipelineImaging", run).run()
    shutil.copytree(made, ours.eu_cache / made.name)
    folder = made / products.products_path(uid)
    shutil.copy(folder / products.weblog_name(uid, run), ours.eu_cache)
    report = (folder / products.report_name(uid, run)).read_bytes()
    body = {"ousUID": uid, "timestamp": run, "report": base64.b64encode(report).decode(),
            "productsDir": made.name}

    # A path that is no site's cache is refused, naming it; the OUS waits for a good report.
    bad = bus.send("pipeline.report.JAO", dict(body, source="/somewhere/else/cache"))
    msgq = server.db(tables.MSGQ)
    wait_for(lambda: msgq.get(bad).get("status") == "failed", 60, what="the bad report refused")
    assert "'/somewhere/else/cache' is not a location" in msgq.get(bad)["error"]

    weblog = products.weblog_name(uid, run)
    for selector, file_type, name in (("cached.JAO", "productsdir", made.name), ("cached.JAO", "weblog", weblog),
                                      ("cached.EU", "weblog", weblog)):
        bus.send(selector, {"fileType": file_type, "cachedAt": "EU", "name": name})
    bus.send("pipeline.report.JAO", dict(body, source=str(ours.eu_cache) + "/"))
    bus.xtss("set-state", uid, "ReadyForReview")
    wait_state(server, uid, "Delivered")
    assert_end_state(server, uid)
    assert Reports(server).latest(uid)["source"] == "EU"
    assert f"at EU, whose cache {ours.eu_cache}/ is" in ours.log("aqua-qa2")


def verified(server, uid):
    status = StatusTable(server)
    status.reset(PROG, uid, "PipelineImaging")
    status.set_flag(uid, EXECUTIVE_FLAG, "EU")
    for step in ("Processing", "ReadyForReview", "Reviewing", "Verified"):
        status.set_state(uid, step)
    return status


def product_files(uid, run=RUN):
    files = {name: f"{name}\n".encode() * 50 for name in products.product_names(uid, run)}
    files[products.weblog_name(uid, run)] = b"PK\x05\x06" + bytes(18)   # an empty zip
    return files


def test_the_original_ingestor_and_our_tracker(server, actors, tmp_path):
    """Its NGAS documents: "_" ids, bytes in encodedContents, no checksum. Its substates
    arrive while the OUS is still Verified (its QA2 sets DeliveryInProgress later)."""
    uid = "uid://X1/X1/Xo5"
    verified(server, uid)
    ours = Ours(actors, tmp_path, only=("xtss", "data-tracker"))
    bus = OriginalBus(server)
    files = product_files(uid)
    names = products.product_names(uid, RUN)
    server.db(tables.REPORTS).put(report_doc(uid, RUN, "EU", "PHJlcG9ydC8+", products.products_dir(PROG, RUN)))
    bus.xtss("set-substate", uid, "IngestionTriggered")   # still Verified
    bus.xtss("set-state", uid, "DeliveryInProgress")
    bus.xtss("set-substate", uid, "AnalyzingProducts")
    bus.xtss("set-substate", uid, "IngestingProducts")
    for name, content in files.items():
        archive(server, name, content)
        if name in names:
            server.db(tables.METADATA).put({"_id": original_id(name), "progID": PROG, "ousUID": uid,
                                            "timestamp": RUN})
    server.db(tables.DELIVERY).put({"_id": ous_id(uid), "progID": PROG, "ousUID": uid,
                                    "timestamp": local_timestamp(), "dataProducts": sorted(names),
                                    "complete": True})
    # One product's bytes are damaged at first: it does not count as archived.
    ngas = server.db(tables.NGAS)
    good = ngas.get(original_id(names[2]))
    ngas.put(dict(good, encodedContents="not base64!"))
    bus.xtss("set-substate", uid, "ProductsIngested")
    wait_for(lambda: "refused ngas document" in ours.log("data-tracker")
             and "is not base64" in ours.log("data-tracker"), 60, what="the damaged file refused")
    assert state(server, uid) == "DeliveryInProgress"
    ngas.put(dict(good, _rev=ngas.get(good["_id"])["_rev"]))
    wait_state(server, uid, "Delivered")
    assert_end_state(server, uid)


def test_our_ingestor_and_the_original_tracker(server, actors, tmp_path):
    """The original's tracker looks every product up under its "_" id (it stopped with
    NGAS error 404 before), then empties the substate before Delivered."""
    uid = "uid://X1/X1/Xo6"
    verified(server, uid)
    ours = Ours(actors, tmp_path, only=("xtss", "product-ingestor"))
    files = product_files(uid)
    folder = ours.jao_cache / products.products_dir(PROG, RUN) / products.products_path(uid)
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    Reports(server).store(uid, RUN, "PHJlcG9ydC8+", products.products_dir(PROG, RUN), "EU")
    weblog = products.weblog_name(uid, RUN)
    Ngas(server).archive(weblog, files[weblog])            # as our JAO cache replicator does
    bus = OriginalBus(server)
    bus.send("ingest.JAO", {"ousUID": uid, "timestamp": RUN, "productsDir": products.products_dir(PROG, RUN)})
    bus.xtss("set-state", uid, "DeliveryInProgress")
    wait_for(lambda: server.db(tables.STATUS).get(ous_id(uid))["substate"] == "ProductsIngested", 60,
             what="ProductsIngested")
    # The original Data Tracker.
    delivery = server.db(tables.DELIVERY).get(ous_id(uid))
    assert delivery["complete"]
    for name in delivery["dataProducts"]:
        doc = server.db(tables.NGAS).get(original_id(name))   # NotFound here was its crash
        assert doc["checksum"] == checksum(files[name])
    bus.xtss("clear-exec", uid)
    bus.xtss("set-substate", uid, "")
    bus.xtss("set-state", uid, "Delivered")
    assert_end_state(server, uid)
    assert "5 products ingested" in ours.log("product-ingestor")


# -- tables and messages of other writers
def test_tables_written_by_an_earlier_version_keep_working(server, actors, tmp_path):
    """Ids with ":" (as this project wrote them before): found, never doubled, delivered."""
    uid = "uid://X1/X1/Xo7"
    status = verified(server, uid)
    files = product_files(uid)
    names = products.product_names(uid, RUN)
    ngas = server.db(tables.NGAS)
    for name, content in files.items():
        ngas.put({"_id": name, "writeTimestamp": RUN, "size": len(content), "checksum": checksum(content),
                  "_attachments": {"content": {"content_type": "application/octet-stream",
                                               "data": base64.b64encode(content).decode()}}})
        if name in names:
            server.db(tables.METADATA).put({"_id": name, "progID": PROG, "ousUID": uid, "timestamp": RUN})
    server.db(tables.REPORTS).put({"_id": f"{RUN}.{ous_id(uid)}", "ousUID": uid, "timestamp": RUN,
                                   "encodedReport": "PHJlcG9ydC8+", "productsDir": "p", "source": "EU"})
    delivery = Delivery(server)
    delivery.start(PROG, uid)
    for name in names:
        delivery.add(uid, name)
    delivery.complete(uid)
    # Written again by this version: the same files, records and report are not stored twice.
    for name, content in files.items():
        assert Ngas(server).archive(name, content)["_id"] == name
        assert Ngas(server).content(name) == content
    for name in names:
        assert Metadata(server).record(name, PROG, uid, RUN)["_id"] == name
    assert Reports(server).store(uid, RUN, "PHJlcG9ydC8+", "p", "EU")["_id"] == f"{RUN}.{ous_id(uid)}"
    assert len(ngas.ids()) == 6 and len(server.db(tables.METADATA).ids()) == 5
    assert len(server.db(tables.REPORTS).ids()) == 1

    Ours(actors, tmp_path, only=("xtss", "data-tracker"))
    status.set_state(uid, "DeliveryInProgress")
    status.set_substate(uid, "ProductsIngested")
    wait_state(server, uid, "Delivered")
    ous = status.get(uid)
    assert not ous["substate"] and EXECUTIVE_FLAG not in ous["flags"]


def test_mixed_ids_and_local_times_keep_order_and_purging(server):
    bus = Bus(server, "test")
    msgq = server.db(tables.MSGQ)
    # Same hour: an old-form id (":") written after a current one ("_") sorts before it as text.
    ours = "2020-01-01T10_20_00.000-" + "a" * 32
    older_version = "2020-01-01T10:30:00.000-" + "b" * 32
    for mid in (older_version, ours):
        msgq.put({"_id": mid, "creationTimestamp": mid[:23].replace("_", ":"), "originIP": "x",
                  "selector": "mixed.order", "consumed": False, "body": mid})
    seen = []
    receiver = Receiver(bus, "mixed.order", lambda m: seen.append(m.body)).start()
    wait_for(lambda: len(seen) == 2, 30, what="both messages")
    receiver.stop()
    assert seen == [ours, older_version]

    # The original's clock is hours behind UTC: a message it sent a moment ago, handled by
    # one of ours, looks 4 hours old by its creationTimestamp; purging goes by its handling.
    recent = OriginalBus(server).send("mixed.local", {})
    old_original = original_id(f"{at(0)}-{uuid.uuid4().hex}")   # taken by the original long ago
    msgq.put({"_id": old_original, "creationTimestamp": at(0), "originIP": "x", "selector": "mixed.local",
              "consumed": True, "body": {}})
    receiver = Receiver(bus, "mixed.local", lambda m: None).start()
    wait_for(lambda: msgq.get(recent).get("status") == "done", 30, what="the local-time message handled")
    receiver.stop()
    assert purge(msgq, 3600) == 1
    assert msgq.get_or_none(recent) and not msgq.get_or_none(old_original)
    bus.close()


def test_a_report_source_path_names_the_site_whose_cache_it_is():
    settings = Settings(caches={"JAO": "/data/jao-cache", "EU": "draws@arc-host:/data/eu-cache/",
                                "NA": "na-host:/data/cache", "EA": "ea-host:/data/cache"})
    assert settings.site_of_cache("/data/eu-cache") == "EU"          # the path part of user@host:path
    assert settings.site_of_cache("/data/jao-cache/") == "JAO"
    assert settings.site_of_cache("/data/cache") is None              # two sites' caches: neither
    assert settings.site_of_cache("/data") is None
