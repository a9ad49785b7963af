"""The message bus, receiving side: each message handled by exactly one receiver (spec §3).

Delivery is push-driven and exactly-once:

* receivers are woken by the process's one msgq feed (:meth:`Bus.feed`),
  never by a sleep between polls (a slow re-scan runs once a minute as a
  safety net only);
* a receiver *claims* a message by writing ``consumed: true`` on the
  revision it read: CouchDB accepts only one such write, so a conflict
  means another receiver has it;
* a claim is a lease, renewed while the handler works; if the receiver dies
  the lease runs out and another receiver (or the restarted one) takes the
  message again. After ``MAX_ATTEMPTS`` such deaths it is marked failed;
* a handler that raises marks the message ``failed`` with the reason; it
  stays in ``msgq`` for people to see and is not retried;
* a message without its table's shape (:mod:`draws.shapes`: ``consumed``
  not a boolean, ``attempts`` not a count, ...) is marked ``failed`` with
  the reason as soon as it is seen, never handled.
"""

import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .bus import is_message, pattern_regex
from . import shapes, tables
from .exceptions import Conflict, CouchError, DrawsError, InvalidRequest, NotFound
from .ous import show
from .timestamps import at, parse_timestamp, timestamp

log = logging.getLogger("draws.receiver")

LEASE_SECONDS = 30.0
RESCAN_SECONDS = 60.0
MAX_ATTEMPTS = 5


@dataclass
class Message:
    """What a handler receives."""
    id: str
    selector: str
    body: object
    msgback_id: str = None
    created: str = None
    origin: str = None
    attempts: int = 1       # > 1: a receiver died handling it before (the work may be done)
    reply: object = None    # set by respond()

    @classmethod
    def from_doc(cls, doc):
        return cls(doc["_id"], doc.get("selector"), doc.get("body"), doc.get("msgbackID"),
                   doc.get("creationTimestamp"), doc.get("originIP"), doc.get("attempts", 1))

    def respond(self, body):
        """Reply BODY to the sender (an RPC request): it is sent when the handler
        returns or raises, in one request with this message's outcome."""
        if not self.msgback_id:
            raise InvalidRequest("this message asks for no reply (it has no msgbackID)")
        self.reply = body


class Receiver:
    """Claims and handles messages whose selector matches PATTERNS.

    At most CONCURRENCY handlers run at once; further messages stay unclaimed
    (so another receiver may take them) until a slot frees.
    """

    def __init__(self, bus, patterns, handler, concurrency=1, lease=LEASE_SECONDS,
                 rescan=RESCAN_SECONDS, name=None):
        self.bus = bus
        self.db = bus.db
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        self._regex_text = pattern_regex(self.patterns)
        self._regex = re.compile(self._regex_text)
        self.handler = handler
        self.concurrency = concurrency
        self.lease = lease
        self.rescan = rescan
        self.name = name or ",".join(self.patterns)
        self._events = queue.Queue()
        self._candidates = {}   # id -> doc: unconsumed, ours to claim
        self._leased = {}       # id -> lease expiry (epoch) of messages others hold
        self._busy = set()      # ids our handlers work on
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"handler-{self.name}")
        self._stop = threading.Event()
        self._thread = None
        self._feed = None
        self.handled = 0

    def start(self):
        self._thread = threading.Thread(target=self._run_or_exit, daemon=True, name=f"receiver-{self.name}")
        self._thread.start()
        return self

    def stop(self, wait=True):
        self._stop.set()
        self._events.put(None)
        if self._feed is not None:
            self._feed.unsubscribe(self._on_doc)
        self._pool.shutdown(wait=wait)

    def join(self, timeout=None):
        self._thread.join(timeout)

    def _run_or_exit(self):
        """run() in the background: should it ever die, the process exits, so that its
        supervisor restarts it, rather than live on deaf to its messages."""
        try:
            self.run()
        except BaseException as exc:
            log.exception("the receiver on %s stopped", ", ".join(self.patterns))
            log.critical("exiting: the receiver on %s died (%s: %s)", ", ".join(self.patterns),
                         type(exc).__name__, exc)
            os._exit(70)

    def _on_doc(self, doc):
        if is_message(doc) and self._regex.match(doc["selector"]):
            self._events.put(("doc", doc))

    # -- the loop
    def run(self):
        log.debug("%s listening on %s", self.bus.actor, ", ".join(self.patterns))
        # Hear of new messages before the first scan, so that nothing falls between.
        self._feed = self.bus.feed()
        self._feed.subscribe(self._on_doc)
        next_scan = 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= next_scan:
                self._scan()
                next_scan = now + self.rescan
            for mid, expiry in list(self._leased.items()):
                if expiry <= now:
                    del self._leased[mid]
                    self._refresh(mid)
            self._dispatch()
            wake = min([next_scan] + list(self._leased.values()))
            try:
                event = self._events.get(timeout=max(0.01, wake - time.time()))
            except queue.Empty:
                continue
            while event is not None:
                if event[0] == "doc":
                    self._accept(event[1])
                else:
                    self._busy.discard(event[1])
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    event = None

    def _scan(self):
        """The safety net: find unconsumed and abandoned messages directly."""
        sel = {"$regex": self._regex_text}
        for doc in self.db.find({"consumed": False, "selector": sel}):
            self._accept(doc)
        for doc in self.db.find({"status": "claimed", "selector": sel}):
            self._accept(doc)

    def _refresh(self, mid):
        try:
            self._accept(self.db.get(mid))
        except NotFound:
            self._candidates.pop(mid, None)

    def _accept(self, doc):
        mid = doc["_id"]
        if mid in self._busy:
            return
        self._leased.pop(mid, None)
        if doc.get("consumed") is True and doc.get("status") != "claimed":
            self._candidates.pop(mid, None)   # handled already
            return
        why = shapes.check(tables.MSGQ, doc)
        if why:
            self._candidates.pop(mid, None)
            self._refuse(doc, why)
            return
        if not doc.get("consumed"):
            self._candidates[mid] = doc
            return
        self._candidates.pop(mid, None)
        if doc.get("status") == "claimed":
            try:
                expiry = parse_timestamp(doc["leaseExpires"])
            except (KeyError, TypeError, ValueError):
                expiry = 0.0
            if expiry <= time.time():
                self._candidates[mid] = doc   # its receiver died: take it over
            else:
                self._leased[mid] = expiry

    def _refuse(self, doc, why):
        """Mark a malformed message failed with the reason: it is never handled."""
        refused = dict(doc, consumed=True, status="failed", consumedBy=self.bus.identity,
                       consumedAt=timestamp(), handledAt=timestamp(), error=(shapes.REFUSED + why)[:2000])
        refused.pop("leaseExpires", None)
        try:
            self.db.put(refused)
        except (Conflict, NotFound):
            pass   # another receiver refused it first, or it is gone
        except CouchError as exc:
            log.error("could not mark message %s failed: %s", show(doc["_id"]), exc)

    def _dispatch(self):
        for mid in sorted(self._candidates):   # ids start with the creation time
            if len(self._busy) >= self.concurrency or self._stop.is_set():
                return
            doc = self._candidates.pop(mid)
            job = self._claim(doc)
            if job is not None:
                self._busy.add(mid)
                self._pool.submit(self._work, job)

    def _claim(self, doc):
        attempts = doc.get("attempts", 0) + 1
        now = time.time()
        claimed = dict(doc, consumed=True, status="claimed", consumedBy=self.bus.identity,
                       consumedAt=timestamp(), attempts=attempts,
                       leaseExpires=at(now + self.lease))
        if attempts > MAX_ATTEMPTS:
            claimed.update(status="failed", handledAt=timestamp(),
                           error=f"abandoned: {MAX_ATTEMPTS} receivers died handling it")
            claimed.pop("leaseExpires")
        try:
            self.db.put(claimed)
        except Conflict:
            self._refresh(doc["_id"])   # someone else has it; learn its state
            return None
        except NotFound:
            return None
        if attempts > MAX_ATTEMPTS:
            log.error("message %s on %s abandoned after %d attempts",
                      doc["_id"], doc["selector"], MAX_ATTEMPTS)
            return None
        if attempts > 1:
            log.warning("taking over message %s on %s (attempt %d; its receiver stopped)",
                        doc["_id"], doc["selector"], attempts)
        return _Job(claimed)

    def _work(self, job):
        keeper = threading.Thread(target=self._keep_lease, args=(job,), daemon=True)
        keeper.start()
        error = None
        message = Message.from_doc(job.doc)
        try:
            self.handler(message)
        except Exception as exc:  # a handler error must never kill the receiver
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, InvalidRequest):
                log.error("rejected message %s on %s: %s", job.doc["_id"], job.doc["selector"], exc)
            elif isinstance(exc, DrawsError):   # an expected failure, already one clear sentence
                log.error("failed message %s on %s: %s", job.doc["_id"], job.doc["selector"], exc)
            else:
                log.exception("handler failed on message %s on %s", job.doc["_id"], job.doc["selector"])
        finally:
            job.finished.set()
            keeper.join()
            reply = message.reply
            self._finish(job, error, None if reply is None else
                         self.bus.new_message(message.msgback_id, reply))
            self.handled += 1
            self._events.put(("done", job.doc["_id"]))

    def _keep_lease(self, job):
        while not job.finished.wait(self.lease / 3):
            with job.lock:
                doc = dict(job.doc, leaseExpires=at(time.time() + self.lease))
                try:
                    self.db.put(doc)
                    job.doc = doc
                except Conflict:
                    log.warning("lost the lease on message %s", doc["_id"])
                    return
                except Exception as exc:
                    log.warning("could not renew the lease on %s: %s", doc["_id"], exc)

    def _finish(self, job, error, reply=None):
        """Write the message's outcome, with the REPLY document (if any) in the same request."""
        with job.lock:
            doc = dict(job.doc, status="failed" if error else "done", handledAt=timestamp())
            doc.pop("leaseExpires", None)
            if error:
                doc["error"] = error[:2000]
            unsent = [reply] if reply else []
            for _ in range(5):
                outcome, *others = self.db.bulk([doc] + unsent)
                for result in others:
                    if result.get("error") not in (None, "conflict"):   # conflict: a retry landed
                        log.error("could not reply to message %s: %s", doc["_id"], result)
                unsent = []
                if "error" not in outcome:
                    return
                if outcome["error"] != "conflict":
                    log.error("could not mark message %s %s: %s", doc["_id"], doc["status"], outcome)
                    return
                current = self.db.get(doc["_id"])
                if current.get("consumedBy") != self.bus.identity:
                    log.warning("message %s was taken over while we handled it", doc["_id"])
                    return
                doc["_rev"] = current["_rev"]


class _Job:
    def __init__(self, doc):
        self.doc = doc
        self.lock = threading.Lock()
        self.finished = threading.Event()
