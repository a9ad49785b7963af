"""Follow a database's continuous _changes feed in a background thread.

Readers are woken by CouchDB itself, the moment a document changes, so
nobody sleeps between polls. One open response carries every change: an
idle feed costs the server a heartbeat line, not a request.

Why continuous and unfiltered: PouchDB Server re-reads a filtered feed's
whole history since its last *match* at every write, so a receiver that
waits for a rare selector made each write cost more than the one before;
and a long poll costs a new request (and a new filter) per wake-up. An
unfiltered continuous feed reads each change once, and a subscriber skips
what is not for it.

A server that lost its data (its tables gone, or made anew, their update
sequences back at 0) would leave a feed waiting past the new table's end
for changes that come late or never: so on every reconnection the feed
checks that it follows the same table (its epoch, see
``Database.epoch``), and if not, says so and follows the new one from its
beginning.
"""

import logging
import threading

import requests

from .exceptions import CouchError, NotFound

log = logging.getLogger("draws.feed")

HEARTBEAT = 10.0   # seconds between the server's keep-alive lines


class Feed:
    """Calls each subscriber with every changed document, in the feed's order.

    Subscribers run in the feed thread and must be quick (hand work to a
    queue). ``since`` is the update sequence to start after; take it with
    ``db.last_seq()`` *before* an initial scan so nothing falls between
    (the default: the feed starts at once with changes from now on).
    ON_HEALTH, if given, is called with None once the feed is connected and
    with the exception each time it breaks. ON_LOST, if given, is called when
    the table turns out gone or made anew (e.g. to make the tables again).
    """

    def __init__(self, db, since=None, include_docs=True, name=None, on_health=None,
                 heartbeat=HEARTBEAT, on_lost=None):
        self.db = db
        self.since = since
        self.include_docs = include_docs
        self.on_health = on_health
        self.on_lost = on_lost
        self._epoch = None   # the table's, once known
        self._lost = False   # said that it lost its data, and it is not back yet
        self.heartbeat = heartbeat
        self._subscribers = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name or f"feed-{db.name}")

    def subscribe(self, callback):
        with self._lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback):
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def start(self):
        if self.since is None:
            self.since = self.db.last_seq()
        self._thread.start()
        return self

    def stop(self):
        """Stop delivering at once; the connection ends at the next line (a heartbeat at most)."""
        self._stop.set()

    @property
    def alive(self):
        return self._thread.is_alive()

    def _health(self, error):
        if self.on_health is not None:
            try:
                self.on_health(error)
            except Exception:
                log.exception("health callback of the %s feed failed", self.db.name)

    def _check_table(self):
        """Make sure we follow the table we followed; if it lost its data, start again."""
        try:
            epoch = self.db.epoch()
            why = None if self._epoch in (None, epoch) else "it was made anew"
        except NotFound:
            why = "it is gone"
        if why:
            if not self._lost:   # once, however long it stays gone
                log.warning("table %s at %s lost its data (%s): following it again from its beginning",
                            self.db.name, self.db.server.url, why)
            self._lost, self.since = True, 0
            if self.on_lost is not None:
                self.on_lost()
            epoch = self.db.epoch()   # NotFound while nobody made it again: the loop retries
        self._epoch, self._lost = epoch, False

    def _run(self):
        failures = 0
        while not self._stop.is_set():
            try:
                if failures or self._epoch is None:
                    self._check_table()
                connected = False
                for change in self.db.follow(self.since, self.include_docs, self.heartbeat):
                    if self._stop.is_set():
                        break
                    if not connected:   # the first line, a change or a heartbeat
                        connected = True
                        if failures:
                            log.warning("changes feed of %s resumed", self.db.name)
                            failures = 0
                        self._health(None)
                    if change is not None:
                        self._deliver(change)
                if not connected:   # ended before a word: do not hammer the server
                    self._stop.wait(1.0)
                # Otherwise the server ended the feed (CouchDB may): follow it again.
            except Exception as exc:   # whatever breaks it, a feed must go on (receivers hang on it)
                if self._stop.is_set():
                    break
                failures += 1
                if not isinstance(exc, (CouchError, requests.RequestException, ValueError)):
                    log.exception("changes feed of %s failed; retrying", self.db.name)
                elif failures == 1:
                    log.warning("changes feed of %s interrupted (%s); retrying", self.db.name, exc)
                self._health(exc)
                # Our own backoff (not the client's), so that stop() is honoured.
                self._stop.wait(min(0.2 * 2 ** failures, 5.0))

    def _deliver(self, change):
        if "last_seq" in change and "seq" not in change:   # CouchDB ended the feed
            self.since = change["last_seq"]
            return
        doc = change.get("doc") or {"_id": change.get("id"), "_deleted": change.get("deleted", False)}
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(doc)
            except Exception:  # one broken subscriber must not stop the feed
                log.exception("subscriber of %s failed on %s", self.db.name, doc.get("_id"))
        self.since = change.get("seq", self.since)

