"""Data Tracker (at the ARC): mark an OUS Delivered once all its products are here.

An OUS is delivered when it is DeliveryInProgress with substate
ProductsIngested and every product its complete delivery status lists is in
the local NGAS with a checksum that matches the product: the file in this
site's cache when it is there, else the bytes NGAS holds. In a two-host
setup those tables arrive by replication, in any order and late, so it
looks again whenever any of them changes.
"""

from pathlib import Path

from .. import tables
from ..archive import Delivery, Metadata, Ngas, checksum
from ..cache import within
from ..exceptions import InvalidRequest, NotFound
from ..ous import Refused, StatusTable
from ..owners import new_step
from ..products import products_dir, products_path
from ..watch import Trigger

STATE, SUBSTATE = "DeliveryInProgress", "ProductsIngested"


def is_ingested(ous):
    return ous.get("state") == STATE and ous.get("substate") == SUBSTATE


class Tracker:
    def __init__(self, ctx):
        self.ctx = ctx
        self.cache = Path(ctx.settings.local_cache) if ctx.settings.local_cache else None
        self.status = StatusTable(ctx.server)
        self.delivery = Delivery(ctx.server)
        self.metadata = Metadata(ctx.server)
        self.ngas = Ngas(ctx.server)
        self._told = {}   # uid -> what we last said it waits for (said once, not at every change)
        self._checking = False

    def check_all(self):
        self._checking = True
        try:
            for ous in self.status.find(STATE, f"^{SUBSTATE}$"):
                self.check(ous)
        finally:
            self._checking = False

    def waiting(self):
        """Does any change of NGAS, the metadata or a delivery matter now? Only while an
        OUS waits for them (which one is not worth working out: check_all looks at
        each): the ingestor writes them all before ProductsIngested, which wakes us
        anyway (at an ARC they may come later, by replication)."""
        return bool(self._told) or self._checking

    def check(self, ous):
        uid = ous["entityId"]
        delivery = self.delivery.get(uid)
        if not delivery or not delivery.get("complete") or not delivery.get("dataProducts"):
            return self._waits(uid, "its complete delivery status")
        problems = [p for p in map(self._problem, delivery["dataProducts"]) if p]
        if problems:
            return self._waits(uid, "; ".join(problems))
        try:   # one guarded step: executive, substate and state together
            self.ctx.xtss.transition(uid, new_step(), [STATE], "Delivered", fromSubstate=[SUBSTATE],
                                     substate=None, clearExec=True)
        except Refused as exc:
            self.ctx.log.info("%s", exc)   # delivered by another tracker, or moved on
            return
        self._told.pop(uid, None)
        self.ctx.log.info("%s Delivered: its %d products are here", uid, len(delivery["dataProducts"]))

    def _problem(self, name):
        """Why product NAME is not (correctly) in the local NGAS, or None."""
        doc = self.ngas.get(name)
        if doc is None:
            return f"{name} not in NGAS"
        local = self._local_file(name)
        try:
            content = local.read_bytes() if local else self.ngas.content(name)
        except NotFound:
            return f"{name}: its bytes are not in NGAS yet"
        except InvalidRequest as exc:
            return str(exc)
        if checksum(content) != self.ngas.checksum_of(doc):
            return f"{name}: NGAS checksum differs from {'the cached file' if local else 'its bytes'}"
        return None

    def _local_file(self, name):
        """The product's file in this site's cache, if its metadata says where and it is there."""
        meta = self.metadata.get(name)
        if self.cache is None or not meta:
            return None
        path = (self.cache / products_dir(meta["progID"], meta["timestamp"])
                / products_path(meta["ousUID"]) / name)
        return path if path.is_file() and within(self.cache, path) else None

    def _waits(self, uid, what):
        if self._told.get(uid) != what:
            self._told[uid] = what
            self.ctx.log.info("%s waits for %s", uid, what)

    def run(self):
        """Deliver what is ready now and after every relevant change; never returns."""
        self.ctx.log.info("delivering ingested OUSs once their products are in NGAS")
        db = self.ctx.server.db
        (Trigger()
         .watch(db(tables.STATUS), is_ingested)
         .watch(db(tables.DELIVERY), lambda doc: doc.get("complete") and self.waiting())
         .watch(db(tables.NGAS), lambda doc: self.waiting())
         .watch(db(tables.METADATA), lambda doc: self.waiting())
         .run(self.check_all))
