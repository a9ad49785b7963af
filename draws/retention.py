"""Keeping msgq small: delete the handled messages nobody needs any more.

A site applies its retention setting (``DRAWS_MSGQ_RETENTION``) by itself:
each cache replicator, one per site, runs a :class:`Keeper` in the
background. With two sites replicating msgq both ways this stays safe:

* only messages whose receiver finished them well (``done``) are deleted;
  an unconsumed, claimed or failed message is kept whatever its age, so a
  message waiting for the other site's receivers is never touched;
* a message is deleted (a tombstone, which replicates), never purged from
  the revision tree: a purged message would come back with the next
  replication from the other site;
* a message with conflicting revisions is left alone: deleting the winner
  would let a losing revision win in its place.
"""

import logging
import threading
import time

from .bus import is_message
from .timestamps import at

log = logging.getLogger("draws.retention")


def _age_mark(doc):
    """When a message was last of use: its handling time (ours, UTC), else its creation
    time, which the original wrote in local time (spec §2). Hours off at worst, and
    only for messages the original's receivers took."""
    mark = doc.get("handledAt")
    if not isinstance(mark, str):
        mark = doc.get("creationTimestamp")
    return mark if isinstance(mark, str) else "\uffff"   # no time at all: never old


def purge(db, older_than_seconds, batch=1000):
    """Delete handled ("done") messages handled (or, if we cannot tell, created) more
    than OLDER_THAN_SECONDS ago.

    Unconsumed, claimed and failed messages stay, whatever their age: they
    still matter to someone. Returns the number deleted.

    It walks msgq's primary index page by page: a Mango query per batch made
    PouchDB Server scan the whole index each time (over 7 minutes for 100,000
    messages, against seconds this way).
    """
    cutoff = at(time.time() - older_than_seconds)
    deleted, page = 0, {}
    while True:
        rows = db.all_docs(include_docs="true", conflicts="true", limit=batch, **page)["rows"]
        if not rows:
            return deleted
        # Messages consumed by the original mockup's receivers carry no status.
        doomed = [{"_id": d["_id"], "_rev": d["_rev"], "_deleted": True}
                  for d in (r.get("doc") or {} for r in rows)
                  if is_message(d) and d.get("consumed") and d.get("status", "done") == "done"
                  and not d.get("_conflicts") and _age_mark(d) < cutoff]
        if doomed:
            # A message changed meanwhile (a conflict) is left for the next round.
            deleted += sum(1 for r in db.bulk(doomed) if "error" not in r)
        # Start the next page at this one's last id, which is gone if we deleted it.
        last = rows[-1]["id"]
        page = {"startkey": last, "skip": 0 if doomed and doomed[-1]["_id"] == last else 1}


class Keeper:
    """Purges DB (msgq) of handled messages older than RETENTION seconds, every so often."""

    def __init__(self, db, retention):
        self.db = db
        self.retention = retention
        # Often enough that msgq holds at most a quarter more than the retention
        # asks, seldom enough that an idle site hardly notices (at most hourly).
        self.interval = min(3600.0, max(1.0, retention / 4))
        self._stop = threading.Event()

    def start(self):
        threading.Thread(target=self.run, daemon=True, name="msgq-retention").start()
        return self

    def run(self):
        log.info("keeping handled messages for %g s (msgq looked at every %g s)",
                 self.retention, self.interval)
        while not self._stop.is_set():
            try:
                count = purge(self.db, self.retention)
                if count:
                    log.info("deleted %d handled message(s) older than %g s", count, self.retention)
            except Exception as exc:   # CouchDB away for a while: try again next time
                log.warning("could not purge msgq: %s", exc)
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
