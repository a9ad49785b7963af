"""The message bus: messages and groups in the ``msgq`` table (spec §2, §3).

Delivery is push-driven and exactly-once:

* receivers are woken by msgq's continuous ``_changes`` feed, never by a
  sleep between polls (a slow re-scan runs once a minute as a safety net
  only). A process follows msgq once, whatever it listens to: its
  receivers and the RPC calls waiting for replies share that feed, and
  each skips what is not for it (see :mod:`draws.feed` for why CouchDB
  does not filter it);
* a receiver *claims* a message by writing ``consumed: true`` on the
  revision it read: CouchDB accepts only one such write, so a conflict
  means another receiver has it;
* a claim is a lease, renewed while the handler works; if the receiver dies
  the lease runs out and another receiver (or the restarted one) takes the
  message again. After ``MAX_ATTEMPTS`` such deaths it is marked failed;
* a handler that raises marks the message ``failed`` with the reason; it
  stays in ``msgq`` for people to see and is not retried.
"""

import logging
import os
import queue
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .exceptions import Conflict, CouchError, DrawsError, InvalidRequest, NotFound
from .feed import Feed
from .timestamps import at, parse_timestamp, timestamp

log = logging.getLogger("draws.bus")

MSGQ = "msgq"
LEASE_SECONDS = 30.0
RESCAN_SECONDS = 60.0
MAX_ATTEMPTS = 5
SELECTOR_RE = re.compile(r"^[A-Za-z0-9_.*:-]{1,200}$")

def _origin_ip():
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def pattern_regex(patterns):
    """A regex matching selectors against shell-style patterns (``*`` = anything)."""
    alts = ["".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", p))
            for p in patterns]
    return "^(" + "|".join(alts) + ")$"


def check_selector(selector):
    if not isinstance(selector, str) or not SELECTOR_RE.match(selector):
        raise InvalidRequest(f"invalid selector {selector!r}: letters, digits and . _ - : only")
    return selector


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


def body_fields(body, what, *names):
    """The NAMES fields of a message BODY (WHAT it is, for errors); InvalidRequest if not there."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"{what} is a JSON object, not {type(body).__name__}")
    missing = [name for name in names if name not in body]
    if missing:
        raise InvalidRequest(f"{what} needs {', '.join(missing)}")
    return tuple(body[name] for name in names)


def is_message(doc):
    return isinstance(doc.get("selector"), str) and not doc.get("_deleted") \
        and not doc["_id"].startswith("_design/")


class Bus:
    """Send and receive messages. One per process is enough; it is thread-safe."""

    def __init__(self, server, actor="draws"):
        self.db = server.db(MSGQ)
        self.actor = actor
        self.origin_ip = _origin_ip()
        self.identity = f"{actor}@{socket.gethostname()}:{os.getpid()}"
        self._feed = None        # msgq's changes, followed from the first need on
        self._waiters = {}       # reply selector -> _Waiter
        self._lock = threading.Lock()

    # -- sending
    def send(self, selector, body, msgback_id=None):
        """Send BODY to SELECTOR (a group ``name.*`` sends a copy to each member).

        Returns the ids of the message documents written.
        """
        check_selector(selector)
        if selector.endswith(".*"):
            group = self.db.get_or_none(selector)
            if group is None:
                raise InvalidRequest(f"no group {selector!r}: define it before sending to it")
            return [i for member in group.get("members", [])
                    for i in self.send(member, body, msgback_id)]
        doc = self.new_message(selector, body, msgback_id)
        try:
            self.db.put(doc)
        except Conflict:
            pass  # our own retried write landed: the id is unique to this send
        return [doc["_id"]]

    def send_all(self, messages):
        """Send each (SELECTOR, BODY) of MESSAGES (single selectors, not groups) in one request.

        They are separate messages, as if sent one by one in this order.
        Returns their ids.
        """
        docs = [self.new_message(check_selector(selector), body) for selector, body in messages]
        if any(d["selector"].endswith(".*") for d in docs):
            raise InvalidRequest("send_all sends to single selectors; send() to a group")
        for doc, result in zip(docs, self.db.bulk(docs)):
            if result.get("error") not in (None, "conflict"):   # conflict: a retried request landed
                raise CouchError(f"could not send to {doc['selector']}: {result.get('reason')}")
        return [d["_id"] for d in docs]

    def new_message(self, selector, body, msgback_id=None):
        """The document of a message to SELECTOR (one member, not a group), unwritten."""
        created = timestamp()
        doc = {"_id": f"{created}-{uuid.uuid4().hex}", "creationTimestamp": created,
               "originIP": self.origin_ip, "selector": selector, "consumed": False,
               "body": body, "sentBy": self.identity}   # beyond the spec: which process sent it
        if msgback_id:
            doc["msgbackID"] = msgback_id
        return doc

    def define_group(self, name, members):
        """Create or replace group NAME (ending in ``.*``) with MEMBERS."""
        check_selector(name)
        if not name.endswith(".*"):
            raise InvalidRequest(f"a group name ends in '.*', not {name!r}")
        for m in members:
            check_selector(m)

        def change(doc):
            doc["members"] = list(members)
        return self.db.update(name, change, create=dict)

    # -- receiving
    def feed(self):
        """This process's one feed of msgq, started on first use."""
        with self._lock:
            if self._feed is None:
                self._feed = Feed(self.db, name=f"msgq-{self.actor}")
                self._feed.subscribe(self._on_doc)
                self._feed.start()
            return self._feed

    def _on_doc(self, doc):
        waiter = self._waiters.get(doc.get("selector"))
        if waiter is not None and not doc.get("consumed") and is_message(doc):
            waiter.doc = doc
            waiter.arrived.set()

    @staticmethod
    def new_reply_selector():
        """A fresh msgbackID (32 hex digits)."""
        return uuid.uuid4().hex

    def receiver(self, patterns, handler, concurrency=1, lease=LEASE_SECONDS, name=None):
        """A Receiver calling HANDLER(Message) for messages on PATTERNS."""
        return Receiver(self, patterns, handler, concurrency=concurrency, lease=lease, name=name)

    def listen(self, patterns, handler, **kw):
        """Start a receiver in the background and return it."""
        return self.receiver(patterns, handler, **kw).start()

    def expect(self, selector, what=None):
        """Prepare to wait for one message on SELECTOR (an RPC reply); see take().

        From now on a message on SELECTOR is caught, so call it before sending the request.
        """
        self.feed()
        waiter = _Waiter(selector, what or selector)
        self._waiters[selector] = waiter
        return waiter

    def take(self, waiter, timeout, patience=15.0):
        """Wait up to TIMEOUT s for WAITER's message; mark it done and return it.

        Says every PATIENCE seconds that it still waits, so a person knows why
        nothing happens (the executor may be down, or a replication link).
        """
        deadline = time.monotonic() + timeout
        doc = None
        try:
            while not waiter.arrived.wait(max(0.0, min(patience, deadline - time.monotonic()))):
                # The feed may be cut off (CouchDB restarting): look directly now and then.
                doc = self._unread(waiter.selector)
                if doc is not None or time.monotonic() >= deadline:
                    break
                log.warning("still waiting for a reply on %s (%.0f s so far)", waiter.what,
                            timeout - (deadline - time.monotonic()))
        finally:
            self._waiters.pop(waiter.selector, None)
        doc = waiter.doc or doc
        if doc is None:
            return None
        doc.update(consumed=True, status="done", consumedBy=self.identity,
                   consumedAt=timestamp(), handledAt=timestamp())
        try:
            self.db.put(doc)
        except Conflict:
            pass  # only we listen on a reply selector; a retried write already landed
        return Message.from_doc(doc)

    def _unread(self, selector):
        try:
            docs = self.db.find({"selector": selector, "consumed": False}, limit=1)
        except CouchError:
            return None
        return docs[0] if docs else None

    def withdraw(self, message_id, reason):
        """Take back a message nobody has taken yet (True), e.g. an RPC request we gave up on."""
        doc = self.db.get_or_none(message_id)
        if doc is None or doc.get("consumed"):
            return False
        doc.update(consumed=True, status="failed", consumedBy=self.identity,
                   consumedAt=timestamp(), handledAt=timestamp(), error=f"withdrawn: {reason}")
        try:
            self.db.put(doc)
            return True
        except Conflict:
            return False   # its receiver took it just now

    def close(self):
        """Stop following msgq (receivers of this bus stop hearing of new messages)."""
        with self._lock:
            if self._feed is not None:
                self._feed.stop()
                self._feed = None


class _Waiter:
    def __init__(self, selector, what):
        self.selector = selector
        self.what = what
        self.doc = None
        self.arrived = threading.Event()


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
        self._thread = threading.Thread(target=self.run, daemon=True, name=f"receiver-{self.name}")
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
