"""Product Ingestor: NGAS, metadata, delivery status; idempotent; waits for late products."""

import base64

from draws.archive import Delivery, Metadata, Ngas, checksum
from draws.bus import Bus
from draws.feed import Feed
from draws.ids import doc_id
from draws.ous import StatusTable
from draws.products import product_names, products_dir, products_path
from support import wait_for

PROG = "2015.1.00657.S"
RUN = "2018-07-24T09:49:20.902"
SUBSTATES = ["IngestionTriggered", "AnalyzingProducts", "IngestingProducts", "ProductsIngested"]


def make_products(cache, uid, run=RUN, progid=PROG):
    """The products folder a Pipeline run leaves in CACHE; returns {name: bytes}."""
    folder = cache / products_dir(progid, run) / products_path(uid)
    folder.mkdir(parents=True)
    contents = {name: f"{name}\n".encode() * 100 for name in product_names(uid, run)}
    for name, content in contents.items():
        (folder / name).write_bytes(content)
    return contents


def verified(server, uid, state="DeliveryInProgress"):
    status = StatusTable(server)
    status.reset(PROG, uid, "PipelineImaging")
    for step in ("Processing", "ReadyForReview", "Reviewing", "Verified", state):
        status.set_state(uid, step)
    return status


def ingest(bus, uid, run=RUN, progid=PROG):
    [mid] = bus.send("ingest.JAO", {"ousUID": uid, "timestamp": run,
                                    "productsDir": products_dir(progid, run)})
    return mid


def handled(server, mid):
    return server.db("msgq").get(mid).get("status") in ("done", "failed")


def test_ingests_once_even_when_told_twice(server, actors, env, tmp_path):
    uid = "uid://X1/X1/Xb0"
    status = verified(server, uid)
    contents = make_products(tmp_path / "jao-cache", uid)
    actors.start("xtss.py")
    actors.start("product-ingestor.py")
    bus = Bus(server, "test")

    first = ingest(bus, uid)
    wait_for(lambda: handled(server, first), 30, what="the ingest message handled")
    ngas = Ngas(server)
    docs = {name: ngas.get(name) for name in contents}
    revs = {name: doc["_rev"] for name, doc in docs.items()}

    second = ingest(bus, uid)
    wait_for(lambda: handled(server, second), 30, what="the same message handled again")
    for mid in (first, second):
        assert server.db("msgq").get(mid)["status"] == "done"

    ous = status.get(uid)
    assert (ous["state"], ous["substate"]) == ("DeliveryInProgress", "ProductsIngested")
    assert [h["substate"] for h in ous["history"]][-8:] == SUBSTATES * 2
    # Stored under the ids the original looks them up by: "_" for ":" (spec §2, §9).
    assert server.db("ngas").ids() == sorted(doc_id(name) for name in contents)
    for name, content in contents.items():
        doc = ngas.get(name)
        assert doc["_rev"] == revs[name]            # not rewritten by the second message
        assert (doc["size"], doc["checksum"]) == (len(content), checksum(content))
        assert ngas.content(name) == content
    meta = Metadata(server).for_ous(uid)
    assert sorted(m["_id"] for m in meta) == sorted(doc_id(name) for name in contents)
    assert {(m["progID"], m["timestamp"]) for m in meta} == {(PROG, RUN)}
    delivery = Delivery(server).get(uid)
    assert delivery["complete"] is True and delivery["dataProducts"] == sorted(contents)
    assert delivery["progID"] == PROG


def test_products_an_earlier_version_stored_are_not_stored_twice(server, actors, tmp_path):
    """Ids with ':' (as this project wrote them before), looked up for all products at once."""
    uid = "uid://X1/X1/Xb9"
    verified(server, uid)
    contents = make_products(tmp_path / "jao-cache", uid)
    earlier = sorted(contents)[:2]
    for name in earlier:
        assert ":" in name
        Ngas(server).db.put({"_id": name, "writeTimestamp": RUN, "size": len(contents[name]),
                             "checksum": checksum(contents[name]), "_attachments": {"content": {
                                 "content_type": "application/octet-stream",
                                 "data": base64.b64encode(contents[name]).decode()}}})
        Metadata(server).db.put({"_id": name, "progID": PROG, "ousUID": uid, "timestamp": RUN})
    actors.start("xtss.py")
    actors.start("product-ingestor.py")
    mid = ingest(Bus(server, "test"), uid)
    wait_for(lambda: handled(server, mid), 30, what="the ingest message handled")
    assert server.db("msgq").get(mid)["status"] == "done"
    stored = sorted(earlier + [doc_id(name) for name in sorted(contents)[2:]])
    assert sorted(server.db("ngas").ids()) == stored
    assert sorted(server.db("products-metadata").ids()) == stored
    assert all(Ngas(server).content(name) == content for name, content in contents.items())
    assert Delivery(server).get(uid)["complete"] is True


def test_several_ouss_at_once_and_the_delivery_grows(server, actors, tmp_path):
    uids = [f"uid://X1/X1/Xp{i}" for i in range(4)]
    for uid in uids:
        verified(server, uid)
        make_products(tmp_path / "jao-cache", uid)
    seen = []                          # (uid, products listed, complete) as delivery-status changes
    feed = Feed(server.db("delivery-status")).start()
    feed.subscribe(lambda doc: seen.append((doc.get("ousUID"), len(doc.get("dataProducts", [])),
                                            doc.get("complete"))))
    actors.start("xtss.py")
    # Small simulated waits (0.1 s per product) so that the feed sees each step.
    actors.start("product-ingestor.py", "-n", "3", env={"DRAWS_DELAY_SCALE": "0.05"})
    bus = Bus(server, "test")
    mids = [ingest(bus, uid) for uid in uids]
    wait_for(lambda: all(handled(server, m) for m in mids), 60, what="4 OUSs ingested")
    wait_for(lambda: sum(1 for s in seen if s[2]) == 4, 10, what="4 complete deliveries seen")
    feed.stop()

    assert len(server.db("ngas").ids()) == 20 and len(server.db("products-metadata").ids()) == 20
    for uid in uids:
        counts = [n for u, n, _ in seen if u == uid]
        assert counts == sorted(counts) and counts[-1] == 5 and len(set(counts)) >= 4, counts
    status = StatusTable(server)
    spans = sorted((_when(status.get(u), "IngestionTriggered"), _when(status.get(u), "ProductsIngested"))
                   for u in uids)
    assert spans[2][0] < spans[0][1], "three ingestions should have run at once"


def _when(ous, substate):
    return next(h["timestamp"] for h in ous["history"] if h["substate"] == substate)


def test_waits_for_products_that_arrive_later(server, actors, tmp_path):
    uid = "uid://X1/X1/Xlate"
    status = verified(server, uid, state="Verified")   # QA2 sets DeliveryInProgress after sending
    actors.start("xtss.py")
    ingestor = actors.start("product-ingestor.py")
    ingest(Bus(server, "test"), uid)
    wait_for(lambda: "waiting up to 300 s for 5 products" in ingestor.log(), 30, what="the ingestor waiting")
    assert status.get(uid)["substate"] == "AnalyzingProducts"
    make_products(tmp_path / "jao-cache", uid)
    wait_for(lambda: status.get(uid)["substate"] == "ProductsIngested", 30, what="ProductsIngested")
    assert len(server.db("ngas").ids()) == 5
    assert ingestor.log().count("waiting up to") == 1


def test_bad_bodies_are_refused_and_the_ingestor_keeps_serving(server, actors, tmp_path):
    uid = "uid://X1/X1/Xok"
    verified(server, uid)
    make_products(tmp_path / "jao-cache", uid)
    verified(server, "uid://X1/X1/Xnew", state="ReadyForReview")
    actors.start("xtss.py")
    ingestor = actors.start("product-ingestor.py")
    bus = Bus(server, "test")
    good = {"ousUID": uid, "timestamp": RUN, "productsDir": products_dir(PROG, RUN)}
    bad = [[1, 2], {"ousUID": uid}, dict(good, ousUID="uid://X1/X1/../X2"),
           dict(good, productsDir="../../etc"), dict(good, productsDir="-rf"),
           dict(good, timestamp="2018-07-24 09:49"), dict(good, ousUID="uid://X9/X9/X9"),
           dict(good, ousUID="uid://X1/X1/Xnew")]
    ids = [i for body in bad for i in bus.send("ingest.JAO", body)]
    msgq = server.db("msgq")
    wait_for(lambda: all(msgq.get(i).get("status") == "failed" for i in ids), 30, what="bad bodies refused")
    assert all(msgq.get(i)["error"].startswith("InvalidRequest") for i in ids)
    assert "no OUS uid://X9/X9/X9" in msgq.get(ids[6])["error"]
    assert "is ReadyForReview, not verified" in msgq.get(ids[7])["error"]
    assert server.db("ngas").ids() == [] and not (tmp_path / "etc").exists()

    [mid] = bus.send("ingest.JAO", good)
    wait_for(lambda: msgq.get(mid).get("status") == "done", 30, what="a good message after bad ones")
    assert len(server.db("ngas").ids()) == 5 and ingestor.alive()


def test_a_wait_for_products_holds_no_other_ous(server, actors, tmp_path):
    """One worker: waiting for one OUS's products must not keep it from the next OUS."""
    late, ready = "uid://X1/X1/Xlate", "uid://X1/X1/Xready"
    status = verified(server, late)
    verified(server, ready)
    make_products(tmp_path / "jao-cache", ready)
    actors.start("xtss.py")
    ingestor = actors.start("product-ingestor.py", "-n", "1")
    bus = Bus(server, "test")
    msgq = server.db("msgq")
    waiting = ingest(bus, late)
    wait_for(lambda: msgq.get(waiting).get("status") == "deferred", 30, what="the wait handed back")
    assert status.get(late)["substate"] == "AnalyzingProducts"
    other = ingest(bus, ready)
    wait_for(lambda: status.get(ready)["substate"] == "ProductsIngested", 60,
             what="the next OUS ingested while the first waits")
    assert status.get(late)["substate"] == "AnalyzingProducts" and not handled(server, waiting)
    make_products(tmp_path / "jao-cache", late)
    wait_for(lambda: status.get(late)["substate"] == "ProductsIngested", 60, what="the late OUS ingested")
    done = wait_for(lambda: handled(server, waiting) and msgq.get(waiting), 30, what="the message done")
    assert done["status"] == "done" and done["attempts"] == 1 and done["deferrals"] >= 1
    assert msgq.get(other)["status"] == "done"
    history = [h["substate"] for h in status.get(late)["history"]]
    assert history.count("IngestionTriggered") == 1 and history.count("AnalyzingProducts") == 1
    assert ingestor.log().count("waiting up to") == 1


def test_products_that_never_come_end_in_processing_problem_with_the_reason(server, actors, tmp_path):
    uid = "uid://X1/X1/Xnever"
    status = verified(server, uid)
    actors.start("xtss.py")
    ingestor = actors.start("product-ingestor.py", "--products-wait", "2")
    (mid,) = [ingest(Bus(server, "test"), uid)]
    wait_for(lambda: status.get(uid)["state"] == "ProcessingProblem", 60, what="ProcessingProblem")
    folder = tmp_path / "jao-cache" / products_dir(PROG, RUN) / products_path(uid)
    reason = status.get(uid)["problem"]
    assert "5 products never reached" in reason and str(folder) in reason, reason
    wait_for(lambda: handled(server, mid), 30, what="the message failed")
    doc = server.db("msgq").get(mid)
    assert doc["status"] == "failed" and "5 products never reached" in doc["error"]
    assert ingestor.alive() and "Traceback" not in ingestor.log()


def test_products_the_cache_could_not_take_end_the_wait_at_once(server, actors, tmp_path):
    """A failed cached.JAO of the products directory: no use waiting for it."""
    uid = "uid://X1/X1/Xnoroom"
    status = verified(server, uid)
    bus = Bus(server, "test")
    msgq = server.db("msgq")
    (announced,) = bus.send("cached.JAO", {"fileType": "productsdir", "cachedAt": "EU",
                                           "name": products_dir(PROG, RUN)})
    msgq.put(dict(msgq.get(announced), consumed=True, status="failed",
                  error="CacheFull: no space left in the JAO cache at /x: rsync failed"))
    actors.start("xtss.py")
    actors.start("product-ingestor.py")   # the default wait: 300 s
    ingest(bus, uid)
    wait_for(lambda: status.get(uid)["state"] == "ProcessingProblem", 60, what="ProcessingProblem")
    assert "no space left in the JAO cache at /x" in status.get(uid)["problem"]
