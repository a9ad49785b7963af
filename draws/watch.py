"""Run a piece of work now and again whenever a watched table changes.

The background actors (AQUA Batch Helper, DRA --auto, AQUA/QA2 --auto, Data
Tracker) all follow one pattern: look at the tables, act on what is ready,
then wait for the next relevant change. A burst of changes while the work
runs coalesces into a single further run, so nothing is missed and nothing
is scanned twice for no reason.
"""

import logging
import threading

from .exceptions import DrawsError
from .feed import Feed

log = logging.getLogger("draws.watch")

RETRY_SECONDS = 5.0   # after a failed run (XTSS or CouchDB away): try again this soon


class Trigger:
    def __init__(self):
        self._wake = threading.Event()

    def watch(self, db, relevant=lambda doc: True):
        """Wake up when a document of DB for which RELEVANT(doc) is true changes."""
        def on_change(doc):
            if not doc.get("_deleted") and relevant(doc):
                self._wake.set()
        feed = Feed(db)
        feed.subscribe(on_change)
        feed.start()  # before the first run, so no change can fall between the two
        return self

    def run(self, work):
        """Call WORK() at once, then after each relevant change; never returns."""
        self._wake.set()
        retry = None
        while True:
            if not self._wake.wait(retry):
                log.info("trying again")
            self._wake.clear()
            try:
                work()
                retry = None
            except DrawsError as exc:
                log.error("%s; trying again in %g s or at the next change", exc, RETRY_SECONDS)
                retry = RETRY_SECONDS
