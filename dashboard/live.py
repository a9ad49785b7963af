"""Live updates: one changes feed per table, shared by every browser.

The dashboard follows each DRAWS table with a :class:`draws.feed.Feed`.
A change bumps the table's version (which invalidates the cached views that
read it) and wakes every connected browser's event stream with the names
of the tables that changed; the page then re-reads only what it shows. The
feeds also tell us when CouchDB stops or starts answering, so the page can
say so within seconds and recover without anyone pressing reload.
"""

import json
import logging
import threading
import time

from flask import Response

from draws import tables
from draws.exceptions import CouchError, Unavailable
from draws.feed import Feed

log = logging.getLogger("draws.dashboard")

MIN_GAP = 0.25        # seconds between two pushes to one browser (bursts are coalesced)
KEEPALIVE = 15.0      # seconds of silence before a comment line keeps the stream open


class BrowserStream:
    """One browser's event stream: the tables changed since its last push."""

    def __init__(self):
        self.tables = set()
        self.couch_changed = False
        self.wake = threading.Event()


class Hub:
    def __init__(self, server):
        self.server = server
        self.versions = {name: 0 for name in tables.ALL}
        self.couch_error = None      # why CouchDB does not answer, or None
        self._followed = set()
        self._feeds = []
        self._streams = set()
        self._lock = threading.Lock()

    def init_app(self, app):
        """Serve /events from APP and, when app.config["LIVE"], follow the tables."""
        app.extensions["draws-dashboard"] = self
        app.add_url_rule("/events", "events", self.events)
        if app.config["LIVE"]:
            self.start()

    # -- feeds
    def start(self):
        threading.Thread(target=self._start_feeds, daemon=True, name="dashboard-feeds").start()
        return self

    def _start_feeds(self):
        """Follow every table; while CouchDB is down at start, keep trying."""
        delay = 0.5
        pending = list(tables.ALL)
        while pending:
            try:
                tables.ensure(self.server)
                for name in list(pending):
                    # Only *that* a table changed matters here: no documents.
                    feed = Feed(self.server.db(name), name=f"dashboard-{name}",
                                include_docs=False, on_health=self._feed_health)
                    feed.subscribe(lambda doc, name=name: self.changed(name))
                    feed.start()
                    self._feeds.append(feed)
                    with self._lock:
                        self._followed.add(name)
                    pending.remove(name)
                    self.changed(name)  # anything cached before the feed began may be stale
                self.report_up()
            except CouchError as exc:
                self.report_down(exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _feed_health(self, error):
        if error is None:
            self.report_up()
        elif isinstance(error, Unavailable):
            self.report_down(error)

    def stop(self):
        for feed in self._feeds:
            feed.stop()

    def follows(self, name):
        """True when changes of table NAME reach us (so cached views of it are current)."""
        return name in self._followed and self.couch_error is None

    # -- what changed
    def changed(self, *names):
        with self._lock:
            for name in names:
                self.versions[name] += 1
            for stream in self._streams:
                stream.tables.update(names)
                stream.wake.set()

    def report_down(self, exc):
        reason = str(exc)
        with self._lock:
            was_up, self.couch_error = self.couch_error is None, reason
            if was_up:
                log.warning("CouchDB does not answer: %s", reason)
                self._wake_all()

    def report_up(self):
        if self.couch_error is None:
            return
        with self._lock:
            if self.couch_error is None:
                return
            self.couch_error = None
            log.warning("CouchDB answers again")
            self._wake_all()
        self.changed(*tables.ALL)  # whatever happened meanwhile: show it

    def _wake_all(self):
        for stream in self._streams:
            stream.couch_changed = True
            stream.wake.set()

    # -- browsers
    def health(self):
        return {"couchdb": self.server.url, "up": self.couch_error is None,
                "error": self.couch_error}

    def events(self):
        """The /events response: server-sent events for one browser."""
        return Response(self._stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _stream(self):
        """Server-sent events for one browser, until it goes away."""
        browser = BrowserStream()
        with self._lock:
            self._streams.add(browser)
        try:
            yield _event("couch", self.health())
            last = 0.0
            while True:
                if not browser.wake.wait(KEEPALIVE):
                    yield ": keepalive\n\n"
                    continue
                time.sleep(max(0.0, last + MIN_GAP - time.monotonic()))  # coalesce bursts
                with self._lock:
                    changed, browser.tables = sorted(browser.tables), set()
                    couch, browser.couch_changed = browser.couch_changed, False
                    browser.wake.clear()
                last = time.monotonic()
                if couch:
                    yield _event("couch", self.health())
                if changed:
                    yield _event("change", {"tables": changed})
        finally:
            with self._lock:
                self._streams.discard(browser)


def _event(kind, data):
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"
