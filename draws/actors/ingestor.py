"""Product Ingestor: archive an OUS's products once QA2 has verified it.

On ``ingest.JAO`` it walks the DeliveryInProgress substates (spec §1),
stores the 5 data products in NGAS, writes their metadata and a delivery
status that grows product by product and ends ``complete: true``. Every
write is idempotent, so the same message handled twice duplicates nothing.
The products reach this site's cache by replication, possibly after the
message: then it waits for them instead of failing, without holding a
worker: the message is deferred (handed back to the bus, taken again a
moment later) so that other OUSs are ingested meanwhile. The wait is
bounded; products that never come, or that this site's cache could not take
(a failed ``cached.*`` of their directory, e.g. the cache full), put the OUS
in ProcessingProblem with the reason.
"""

import time
from pathlib import Path

from .. import ids, messages
from ..archive import Delivery, Metadata, Ngas
from ..cache import within
from ..exceptions import DrawsError, InvalidRequest
from ..ous import StatusTable
from ..owners import new_step
from ..products import product_names, products_path
from ..receiver import Defer, Receiver
from ..timestamps import parse_timestamp

INGESTING = ["Verified", "DeliveryInProgress"]   # Verified: the original's QA2 sets it late (spec §9)
PRODUCTS_WAIT = 300.0    # seconds to wait for products still on their way
# How long to defer while they are not there (the file system has no feed): doubled each time.
FIRST_LOOK, LAST_LOOK = 0.5, 4.0
# The original's simulated waits, in seconds (scaled by DRAWS_DELAY_SCALE).
TRIGGER_DELAY, ANALYSIS_DELAY, PRODUCT_DELAY = 3.0, 5.0, 2.0


class Ingestor:
    def __init__(self, ctx, workers=2, products_wait=PRODUCTS_WAIT):
        self.ctx = ctx
        self.workers = workers
        self.cache = Path(ctx.settings.require("local_cache").local_cache)
        self.products_wait = products_wait
        self.status = StatusTable(ctx.server)
        self.ngas = Ngas(ctx.server)
        self.metadata = Metadata(ctx.server)
        self.delivery = Delivery(ctx.server)

    def handle(self, message):
        uid, run, products_dir = messages.check_ingest(message.body)
        ous = self.status.get_or_none(uid)
        if ous is None:
            raise InvalidRequest(f"no OUS {uid}")
        if ous.get("state") == "Delivered":
            self.ctx.log.info("%s is already Delivered: nothing to ingest", uid)
            return
        if ous.get("state") not in ("Verified", "DeliveryInProgress"):
            raise InvalidRequest(f"{uid} is {ous.get('state')}, not verified by QA2: not ingesting it")
        assignment = messages.assignment_of(message.body)
        if assignment not in (None, (ous.get("assignment") or {}).get("id")):
            self.ctx.log.warning("%s: this request belongs to assignment %s, which is over: not ingesting",
                                 uid, assignment)
            return
        progid = ous.get("progID")
        folder = self.cache / products_dir / products_path(uid)
        names = product_names(uid, run)

        if not message.deferrals:   # a deferred message has walked these already
            self._substate(uid, "IngestionTriggered", TRIGGER_DELAY)
            self._substate(uid, "AnalyzingProducts")
        self._check_arrived(message, uid, products_dir, folder, names)
        self.ctx.settings.pause(ANALYSIS_DELAY)
        self._substate(uid, "IngestingProducts")
        known = self.delivery.get(uid)
        if known is None or not set(known.get("dataProducts", ())) <= set(names):
            self.delivery.start(progid, uid)   # a first delivery, or one of an older run
        # Files and records an earlier version stored under old ids: one look per table.
        archived, recorded = (ids.get_old_many(table.db, names) for table in (self.ngas, self.metadata))
        for name in names:
            self.ctx.settings.pause(PRODUCT_DELAY)
            self.ngas.archive_file(self._product(folder, name), archived)
            self.metadata.record(name, progid, uid, run, recorded)
            self.delivery.add(uid, name)
        self.delivery.complete(uid)
        self._substate(uid, "ProductsIngested")
        self.ctx.log.info("%s: %d products ingested from %s", uid, len(names), products_dir)

    def _product(self, folder, name):
        """FOLDER/NAME, unless it is a symbolic link or resolves outside the cache: a
        products tree pulled from another site must not make us archive any other file."""
        path = folder / name
        if not within(self.cache, path):
            raise InvalidRequest(f"{path} is a symbolic link or leaves the cache: not archiving it")
        return path

    def _substate(self, uid, substate, delay=0.0):
        # Guarded: an OUS moved on meanwhile (relaunched, say) is refused, and so is the rest.
        self.ctx.xtss.transition(uid, new_step(), INGESTING, substate=substate)
        self.ctx.log.info("%s: %s", uid, substate)
        self.ctx.settings.pause(delay)

    def _check_arrived(self, message, uid, products_dir, folder, names):
        """Return once the products are in FOLDER; else Defer the message, or give up
        (ProcessingProblem) when they cannot come or the wait is over."""
        missing = [n for n in names if not (folder / n).is_file()]
        if not missing:
            if message.deferrals:
                self.ctx.log.info("%s: the products have arrived", uid)
            return
        waited = time.time() - parse_timestamp(message.deferred_since) if message.deferred_since else 0.0
        reason = self._not_cached(products_dir)
        if reason is None and waited < self.products_wait:
            if not message.deferrals:
                self.ctx.log.info("%s: waiting up to %g s for %d products to reach %s",
                                  uid, self.products_wait, len(missing), folder)
            raise Defer(min(LAST_LOOK, FIRST_LOOK * 2 ** message.deferrals),
                        f"{len(missing)} products of {uid} not yet in {folder}")
        reason = reason or (f"{len(missing)} products never reached {folder} "
                            f"in {self.products_wait:g} s")
        self.ctx.xtss.ask_set_state(uid, "ProcessingProblem", reason=reason)
        raise DrawsError(f"{uid}: {reason}")

    def _not_cached(self, products_dir):
        """Why the JAO cache (ours: we serve ingest.JAO) could not take PRODUCTS_DIR, or None."""
        failed = self.ctx.bus.db.find({"selector": messages.cached_selector("JAO"),
                                       "status": "failed", "body.name": products_dir}, limit=1)
        if not failed:
            return None
        error = failed[0].get("error", "")
        kind, _, text = error.partition(": ")   # "StorageError: no space left in ..."
        return f"the products could not be cached here: {text if kind.isidentifier() else error}"

    def run(self):
        """Ingest on every ingest.JAO message; never returns."""
        selector = messages.INGEST_SELECTOR
        self.ctx.log.info("ingesting products from %s on %s (%d at once)", self.cache, selector, self.workers)
        Receiver(self.ctx.bus, selector, self.handle, concurrency=self.workers).run()
