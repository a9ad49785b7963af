"""Data Tracker: Delivered once every product is in NGAS with a matching checksum."""

from draws.archive import Delivery, Metadata, Ngas
from draws.bus import Bus
from draws.ous import EXECUTIVE_FLAG
from draws.products import products_dir, products_path
from support import wait_for
from test_ingestor import PROG, RUN, ingest, make_products, verified


def test_an_ingested_ous_is_delivered_with_the_expected_end_state(server, actors, tmp_path):
    uid = "uid://X1/X1/Xb0"
    status = verified(server, uid)
    status.set_flag(uid, EXECUTIVE_FLAG, "EU")
    make_products(tmp_path / "jao-cache", uid)
    actors.start("xtss.py")
    actors.start("data-tracker.py")
    actors.start("product-ingestor.py")
    ingest(Bus(server, "test"), uid)
    wait_for(lambda: status.get(uid)["state"] == "Delivered", 30, what="Delivered")

    ous = status.get(uid)
    assert ous["substate"] is None and EXECUTIVE_FLAG not in ous["flags"]
    assert [h["substate"] for h in ous["history"]][-2:] == ["ProductsIngested", None]
    delivery = Delivery(server).get(uid)
    assert delivery["complete"] is True and len(delivery["dataProducts"]) == 5
    assert len(server.db("ngas").ids()) == 5 and len(server.db("products-metadata").ids()) == 5
    wait_for(lambda: server.db("msgq").find({"consumed": False}) == [], 30, what="every message consumed")


def test_waits_for_every_product_with_a_matching_checksum(server, actors, tmp_path):
    """As at an ARC where the archive tables arrive by replication, late and piecemeal."""
    uid = "uid://X2/X2/Xt"
    status = verified(server, uid)
    status.set_substate(uid, "ProductsIngested")
    contents = make_products(tmp_path / "jao-cache", uid)
    names = sorted(contents)
    ngas, metadata, delivery = Ngas(server), Metadata(server), Delivery(server)
    for name in names:
        metadata.record(name, PROG, uid, RUN)
    # The first product is no longer in the cache: its NGAS bytes are checked instead.
    (tmp_path / "jao-cache" / products_dir(PROG, RUN) / products_path(uid) / names[0]).unlink()
    for name in names[:3]:
        ngas.archive(name, contents[name])
    ngas.archive(names[3], b"a corrupted copy")
    actors.start("xtss.py")
    tracker = actors.start("data-tracker.py")

    wait_for(lambda: "waits for its complete delivery status" in tracker.log(), 30, what="no delivery yet")
    delivery.start(PROG, uid)
    for name in names:
        delivery.add(uid, name)
    delivery.complete(uid)
    wait_for(lambda: f"{names[4]} not in NGAS" in tracker.log(), 30, what="a product missing")
    assert f"{names[3]}: NGAS checksum differs from the cached file" in tracker.log()

    ngas.archive(names[4], contents[names[4]])
    wait_for(lambda: tracker.log().count("NGAS checksum differs") == 2, 30, what="only the bad copy left")
    assert status.get(uid)["state"] == "DeliveryInProgress"

    ngas.archive(names[3], contents[names[3]])          # the right bytes replace the bad copy
    wait_for(lambda: status.get(uid)["state"] == "Delivered", 30, what="Delivered")
    assert status.get(uid)["substate"] is None
    wait_for(lambda: f"{uid} Delivered: its 5 products are here" in tracker.log(), 30, what="the log line")
