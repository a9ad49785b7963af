"""Follow a database's _changes feed in a background thread.

Readers are woken by CouchDB itself (a long poll returns as soon as a
document changes), so nobody sleeps between polls. An idle long poll is
re-issued once a minute: CouchDB ends it after ``timeout``, PouchDB Server
keeps it open and we end it with a client-side read timeout.
"""

import logging
import threading

import requests

from .exceptions import CouchError

log = logging.getLogger("draws.feed")

IDLE_SECONDS = 55


class Feed:
    """Calls each subscriber with every changed document, in the feed's order.

    Subscribers run in the feed thread and must be quick (hand work to a
    queue). ``since`` is the update sequence to start after; take it with
    :func:`current_seq` *before* an initial scan so nothing falls between.
    """

    def __init__(self, db, since=None, include_docs=True, name=None, pause=0.0, params=None):
        self.db = db
        self.since = since
        self.include_docs = include_docs
        # Seconds to wait after a batch before asking again. Followers that
        # only need to know that something changed set it: a burst of writes
        # then costs the server a few requests, not one per write.
        self.pause = pause
        self.params = params or {}   # further _changes parameters (a filter)
        self._subscribers = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name or f"feed-{db.name}")
        self.started = threading.Event()

    def subscribe(self, callback):
        with self._lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback):
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def start(self):
        if self.since is None:
            self.since = current_seq(self.db)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()

    @property
    def alive(self):
        return self._thread.is_alive()

    def _run(self):
        self.started.set()
        failures = 0
        while not self._stop.is_set():
            try:
                res = self.db.changes(self.since, timeout_ms=IDLE_SECONDS * 1000,
                                      include_docs=self.include_docs,
                                      read_timeout=(10, IDLE_SECONDS + 10), wait=False,
                                      **self.params)
            except requests.ReadTimeout:
                continue  # PouchDB Server keeps an idle long poll open: ask again
            except (CouchError, requests.RequestException, ValueError) as exc:
                # Our own backoff (not the client's), so that stop() is honoured.
                failures += 1
                if failures == 1:
                    log.warning("changes feed of %s interrupted (%s); retrying", self.db.name, exc)
                self._stop.wait(min(0.2 * 2 ** failures, 5.0))
                continue
            if failures:
                log.warning("changes feed of %s resumed", self.db.name)
                failures = 0
            if self._stop.is_set():
                break
            with self._lock:
                subscribers = list(self._subscribers)
            for change in res.get("results", []):
                doc = change.get("doc") or {"_id": change.get("id"), "_deleted": change.get("deleted", False)}
                for callback in subscribers:
                    try:
                        callback(doc)
                    except Exception:  # one broken subscriber must not stop the feed
                        log.exception("subscriber of %s failed on %s", self.db.name, doc.get("_id"))
            self.since = res.get("last_seq", self.since)
            if self.pause and res.get("results"):
                self._stop.wait(self.pause)


def current_seq(db):
    """The database's update sequence, opaque (CouchDB) or a number (PouchDB)."""
    return db.info()["update_seq"]
