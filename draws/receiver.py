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
  stays in ``msgq`` for people to see and is not retried, unless what it met
  was CouchDB's own trouble (unreachable, a 5xx such as Apache CouchDB's 500
  ``timeout`` under load): then it runs again a little later, a few times at most;
* a handler that cannot go on yet (files still on their way) raises
  :class:`Defer`: the message is handed back, unconsumed, with the time
  (``retryAt``) before which no receiver takes it again, and the handler's
  slot serves other messages meanwhile;
* a slot is freed whatever became of its message meanwhile (deleted, or
  changed by someone else, whose word then stands), and the log says so.
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

from . import presence
from .bus import is_message, pattern_regex
from . import shapes, tables
from .exceptions import Conflict, CouchError, DrawsError, InvalidRequest, NotFound
from .ids import doc_id
from .ous import show
from .timestamps import at, parse_timestamp, timestamp

log = logging.getLogger("draws.receiver")

LEASE_SECONDS = 30.0
RESCAN_SECONDS = 60.0
MAX_ATTEMPTS = 5
RESCAN_AFTER_ERROR = 5.0   # seconds before a failed scan is tried again
SERVER_TROUBLE_DELAY = 5.0   # a handler that met CouchDB's trouble runs again after this,
SERVER_TROUBLE_RETRIES = 6   # ... this many times at most; then its error stands


class Defer(Exception):
    """Raised by a handler that cannot go on yet: hand the message back, to be
    taken again (by any receiver) after DELAY seconds. REASON says what it waits for.
    The handler bounds its own patience (``Message.deferred_since``)."""

    def __init__(self, delay, reason):
        super().__init__(reason)
        self.delay = delay
        self.reason = reason

FINISH_ATTEMPTS = 5   # tries to write a message's outcome while it conflicts


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
    deferrals: int = 0      # how often a handler deferred it (Defer)
    deferred_since: str = None   # when it was first deferred

    @classmethod
    def from_doc(cls, doc):
        return cls(doc["_id"], doc.get("selector"), doc.get("body"), doc.get("msgbackID"),
                   doc.get("creationTimestamp"), doc.get("originIP"), doc.get("attempts", 1),
                   deferrals=doc.get("deferrals", 0), deferred_since=doc.get("deferredSince"))

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
        self._leased = {}       # id -> when to look again: the lease others hold, or retryAt
        self._busy = set()      # ids our handlers work on
        self._full_since = None  # since when every slot is busy while messages wait
        self._next_stall_warning = 0.0
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"handler-{self.name}")
        self._stop = threading.Event()
        self._thread = None
        self._feed = None

    def start(self):
        self._thread = threading.Thread(target=self._run_or_exit, daemon=True, name=f"receiver-{self.name}")
        self._thread.start()
        return self

    def stop(self, wait=True):
        self._stop.set()
        self._events.put(None)
        if self._feed is not None:
            self._feed.unsubscribe(self._on_doc)
            presence.leave(self.bus, ",".join(self.patterns))
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
        presence.enter(self.bus, ",".join(self.patterns))
        next_scan = 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= next_scan:
                next_scan = now + (self.rescan if self._scan() else RESCAN_AFTER_ERROR)
            for mid, expiry in list(self._leased.items()):
                if expiry <= now:
                    del self._leased[mid]
                    self._refresh(mid)
            self._dispatch()
            self._say_if_stalled(now)
            wake = min([next_scan] + list(self._leased.values()))
            try:
                event = self._events.get(timeout=max(0.01, wake - time.time()))
            except queue.Empty:
                continue
            while event is not None:
                if event[0] == "doc":
                    self._accept(event[1])
                else:   # a handler is done; with a time if it deferred its message
                    _, mid, later = event
                    self._busy.discard(mid)
                    if later:   # its own change went by while it was busy: look again then
                        self._leased[mid] = later
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    event = None

    def _scan(self):
        """The safety net: find unconsumed and abandoned messages directly (False if it could not)."""
        sel = {"$regex": self._regex_text}
        try:
            for doc in self.db.find({"consumed": False, "selector": sel}):
                self._accept(doc)
            for doc in self.db.find({"status": "claimed", "selector": sel}):
                self._accept(doc)
        except CouchError as exc:   # msgq gone (the server lost its data) or unreachable
            log.warning("%s could not look for messages on %s (%s); trying again in %g s",
                        self.name, self.db.name, exc, RESCAN_AFTER_ERROR)
            return False
        return True

    def _say_if_stalled(self, now):
        """Say so when every slot has been busy for long while messages wait: a
        handler may hang, and nothing else would show why they are not taken."""
        if len(self._busy) < self.concurrency or not self._candidates:
            self._full_since = None
            return
        if self._full_since is None:
            self._full_since, self._next_stall_warning = now, now + 2 * self.lease
        elif now >= self._next_stall_warning:
            log.warning("%s: all %d handler slot(s) busy for %.0f s (messages %s); %d message(s) wait",
                        self.name, self.concurrency, now - self._full_since,
                        ", ".join(sorted(self._busy)), len(self._candidates))
            self._next_stall_warning = now + 2 * (now - self._full_since)   # less and less often

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
            retry = _time_of(doc.get("retryAt"))
            if retry > time.time():
                self._leased[mid] = retry   # deferred: nobody takes it before then
            else:
                self._candidates[mid] = doc
            return
        self._candidates.pop(mid, None)
        if doc.get("status") == "claimed":
            expiry = _time_of(doc.get("leaseExpires"))
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
        # Ids start with the creation time (":" or "_" in it, by the version that wrote it).
        for mid in sorted(self._candidates, key=doc_id):
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
        claimed.pop("retryAt", None)
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
        error = deferred = later = None
        message = Message.from_doc(job.doc)
        try:
            self._handle(job, message)
        except Defer as exc:
            deferred = exc
            log.info("deferred message %s on %s for %g s: %s", job.doc["_id"], job.doc["selector"],
                     exc.delay, exc.reason)
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
            try:
                if deferred is not None:
                    later = self._hand_back(job, deferred)
                else:
                    self._finish(job, error, None if reply is None else
                                 self.bus.new_message(message.msgback_id, reply))
            except Exception:   # whatever it is, the slot must be freed (else it is lost for good)
                log.exception("could not write the outcome of message %s", job.doc["_id"])
            finally:
                self._events.put(("done", job.doc["_id"], later))

    def _handle(self, job, message):
        """Run the handler; again, a little later, while what it meets is CouchDB's own
        trouble (not the message's fault). Handlers are safe to run again: a lease
        taken over runs them again too."""
        for retry in range(SERVER_TROUBLE_RETRIES + 1):
            try:
                return self.handler(message)
            except CouchError as exc:
                if not exc.transient or retry == SERVER_TROUBLE_RETRIES:
                    raise
                log.warning("message %s on %s met CouchDB's trouble (%s): trying again in %g s",
                            job.doc["_id"], job.doc["selector"], exc, SERVER_TROUBLE_DELAY)
                time.sleep(SERVER_TROUBLE_DELAY)

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
        doc = dict(job.doc, status="failed" if error else "done", handledAt=timestamp())
        doc.pop("leaseExpires", None)
        if error:
            doc["error"] = error[:2000]
        self._write_outcome(job, doc, [reply] if reply else [])

    def _hand_back(self, job, deferred):
        """Give the message back unconsumed, not to be taken before DEFERRED.delay has passed.
        A deferral is no attempt: ``attempts`` counts receivers that died with it.
        Returns the time it may be taken again."""
        later = time.time() + deferred.delay
        doc = dict(job.doc, consumed=False, status="deferred", attempts=job.doc["attempts"] - 1,
                   retryAt=at(later), deferrals=job.doc.get("deferrals", 0) + 1,
                   deferredSince=job.doc.get("deferredSince") or timestamp(),
                   deferredBecause=str(deferred.reason)[:500])
        for name in ("leaseExpires", "consumedBy", "consumedAt"):
            doc.pop(name, None)
        self._write_outcome(job, doc, [])
        return later

    def _write_outcome(self, job, doc, unsent):
        """Write DOC (the message as handled) and UNSENT (a reply) in one request, unless the
        message was deleted or changed by someone else meanwhile: then their word stands."""
        mid, selector = doc["_id"], doc["selector"]
        with job.lock:
            doc["_rev"] = job.doc["_rev"]
            for _ in range(FINISH_ATTEMPTS):
                outcome, *others = self.db.bulk([doc] + unsent)
                for result in others:
                    if result.get("error") not in (None, "conflict"):   # conflict: a retry landed
                        log.error("could not reply to message %s: %s", mid, result)
                unsent = []
                if "error" not in outcome:
                    return
                if outcome["error"] != "conflict":
                    log.error("could not mark message %s %s: %s", mid, doc["status"], outcome)
                    return
                current = self.db.get_or_none(mid)
                if current is None:
                    log.warning("message %s on %s was deleted while we handled it: "
                                "its outcome (%s) is not recorded", mid, selector, doc["status"])
                    return
                if current.get("consumedBy") != self.bus.identity or current.get("status") != "claimed":
                    log.warning("message %s on %s was changed by %s while we handled it (now %s): "
                                "its outcome (%s) is not recorded", mid, selector,
                                current.get("consumedBy") or "someone", current.get("status"),
                                doc["status"])
                    return
                doc["_rev"] = current["_rev"]   # only our lease renewal came between
            log.error("could not mark message %s %s: it kept changing", mid, doc["status"])


def _time_of(value):
    """The epoch time of a timestamp field, 0 if absent or unreadable (: already past)."""
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError):
        return 0.0


class _Job:
    def __init__(self, doc):
        self.doc = doc
        self.lock = threading.Lock()
        self.finished = threading.Event()
