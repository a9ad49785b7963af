"""Keeping msgq small: delete the handled messages nobody needs any more."""

import time

from .bus import is_message
from .timestamps import at


def purge(db, older_than_seconds, batch=1000):
    """Delete handled ("done") messages created more than OLDER_THAN_SECONDS ago.

    Unconsumed, claimed and failed messages stay, whatever their age: they
    still matter to someone. Returns the number deleted.

    It walks msgq's primary index page by page: a Mango query per batch made
    PouchDB Server scan the whole index each time (over 7 minutes for 100,000
    messages, against seconds this way).
    """
    cutoff = at(time.time() - older_than_seconds)
    deleted, page = 0, {}
    while True:
        rows = db.all_docs(include_docs="true", limit=batch, **page)["rows"]
        if not rows:
            return deleted
        # Messages consumed by the original mockup's receivers carry no status.
        doomed = [{"_id": d["_id"], "_rev": d["_rev"], "_deleted": True}
                  for d in (r.get("doc") or {} for r in rows)
                  if is_message(d) and d.get("consumed") and d.get("status", "done") == "done"
                  and isinstance(d.get("creationTimestamp"), str) and d["creationTimestamp"] < cutoff]
        if doomed:
            db.bulk(doomed)
            deleted += len(doomed)
        # Start the next page at this one's last id, which is gone if we deleted it.
        last = rows[-1]["id"]
        page = {"startkey": last, "skip": 0 if doomed and doomed[-1]["_id"] == last else 1}
