"""The message bus: messages and groups in the ``msgq`` table (spec §2, §3).

Delivery is push-driven and exactly-once:

* receivers are woken by the ``_changes`` feed, never by a sleep between
  polls (a slow re-scan runs once a minute as a safety net only). Each
  receiver's feed is filtered by CouchDB (the ``draws-bus`` design document)
  to its own selectors' unconsumed or claimed messages, so a message wakes
  only those who may take it, not every process on the bus. An RPC caller
  long-polls for its one reply only while it waits: every open feed costs
  the server work at each write to msgq;
* a receiver *claims* a message by writing ``consumed: true`` on the
  revision it read: CouchDB accepts only one such write, so a conflict
  means another receiver has it;
* a claim is a lease, renewed while the handler works; if the receiver dies
  the lease runs out and another receiver (or the restarted one) takes the
  message again. After ``MAX_ATTEMPTS`` such deaths it is marked failed;
* a handler that raises marks the message ``failed`` with the reason; it
  stays in ``msgq`` for people to see and is not retried.
"""

import datetime
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

import requests

from .exceptions import Conflict, CouchError, DrawsError, InvalidRequest, NotFound
from .feed import Feed, current_seq

log = logging.getLogger("draws.bus")

MSGQ = "msgq"
LEASE_SECONDS = 30.0
RESCAN_SECONDS = 60.0
MAX_ATTEMPTS = 5
SELECTOR_RE = re.compile(r"^[A-Za-z0-9_.*:-]{1,200}$")

# The changes filter (CouchDB and PouchDB Server both run it): messages whose
# selector matches the ``pattern`` query parameter (a regex), unconsumed or
# claimed. Handled, failed and deleted messages wake nobody.
FILTER_DDOC = "_design/draws-bus"
FILTER = "draws-bus/messages"
FILTER_JS = ("function (doc, req) {\n"
             "  if (typeof doc.selector !== 'string' || doc._deleted) return false;\n"
             "  if (doc.consumed && doc.status !== 'claimed') return false;\n"
             "  return new RegExp(req.query.pattern).test(doc.selector);\n"
             "}")


def timestamp(when=None):
    """UTC, ISO 8601 with milliseconds and no zone: 2018-07-24T09:49:20.902."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def parse_timestamp(text):
    """Seconds since the epoch of a timestamp() string."""
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


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

    @classmethod
    def from_doc(cls, doc):
        return cls(doc["_id"], doc.get("selector"), doc.get("body"), doc.get("msgbackID"),
                   doc.get("creationTimestamp"), doc.get("originIP"), doc.get("attempts", 1))


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


def _ensure_filter(db):
    """Put the changes filter in DB; False if we may not (then feeds go unfiltered)."""
    def change(doc):
        if doc.get("filters", {}).get("messages") == FILTER_JS:
            return False
        doc["filters"] = {"messages": FILTER_JS}
    try:
        db.update(FILTER_DDOC, change, create=dict)
        return True
    except CouchError as exc:   # e.g. a member who is no database admin on CouchDB
        log.warning("cannot install the bus's changes filter in %s (%s): every change "
                    "of msgq will wake every receiver", db.name, exc)
        return False


class Bus:
    """Send and receive messages. One per process is enough; it is thread-safe."""

    def __init__(self, server, actor="draws"):
        self.db = server.db(MSGQ)
        self.actor = actor
        self.origin_ip = _origin_ip()
        self._filter_ok = None   # is the changes filter installed? (asked once, on first need)
        self.identity = f"{actor}@{socket.gethostname()}:{os.getpid()}"

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
        created = timestamp()
        doc = {"_id": f"{created}-{uuid.uuid4().hex}", "creationTimestamp": created,
               "originIP": self.origin_ip, "selector": selector, "consumed": False,
               "body": body, "sentBy": self.identity}   # beyond the spec: which process sent it
        if msgback_id:
            doc["msgbackID"] = msgback_id
        try:
            self.db.put(doc)
        except Conflict:
            pass  # our own retried write landed: the id is unique to this send
        return [doc["_id"]]

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
    def filter_params(self, regex_text):
        """_changes parameters that make CouchDB pass only messages on REGEX_TEXT's selectors."""
        if self._filter_ok is None:
            self._filter_ok = _ensure_filter(self.db)
        return {"filter": FILTER, "pattern": regex_text} if self._filter_ok else {}

    def message_feed(self, regex_text, callback, name):
        """A started Feed calling CALLBACK(doc) for messages whose selector matches REGEX_TEXT.

        CouchDB filters it when it can; subscribers check what they get anyway.
        """
        feed = Feed(self.db, name=name, params=self.filter_params(regex_text))
        feed.subscribe(callback)
        return feed.start()

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

        Notes where msgq stands now, so that a reply written from now on is seen.
        """
        return _Waiter(selector, what or selector, current_seq(self.db))

    def take(self, waiter, timeout, patience=15.0):
        """Wait up to TIMEOUT s for WAITER's message; mark it done and return it.

        Long-polls msgq, filtered to the one selector, only while it waits.
        Says every PATIENCE seconds that it still waits, so a person knows why
        nothing happens (the executor may be down, or a replication link).
        """
        # A large heartbeat lets our read timeout end an idle poll on PouchDB Server.
        params = dict(self.filter_params(f"^{re.escape(waiter.selector)}$"),
                      heartbeat=int(patience * 2000))
        deadline = time.monotonic() + timeout
        since, doc = waiter.since, None
        while doc is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = min(patience, left)
            try:
                res = self.db.changes(since, timeout_ms=int(wait * 1000), include_docs=True,
                                      read_timeout=(10, wait + 1), wait=False, **params)
            except requests.ReadTimeout:
                res = {}
            except (CouchError, requests.RequestException, ValueError):
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            since = res.get("last_seq", since)
            for change in res.get("results", []):
                found = change.get("doc") or {}
                if found.get("selector") == waiter.selector and not found.get("consumed") \
                        and is_message(found):
                    doc = found
                    break
            if doc is None and not res.get("results") and time.monotonic() < deadline:
                log.warning("still waiting for a reply on %s (%.0f s so far)", waiter.what,
                            timeout - (deadline - time.monotonic()))
        if doc is None:
            # A replica may have brought the reply in under our feet; ask once directly.
            docs = self.db.find({"selector": waiter.selector, "consumed": False}, limit=1)
            if not docs:
                return None
            doc = docs[0]
        doc.update(consumed=True, status="done", consumedBy=self.identity,
                   consumedAt=timestamp(), handledAt=timestamp())
        try:
            self.db.put(doc)
        except Conflict:
            pass  # only we listen on a reply selector; a retried write already landed
        return Message.from_doc(doc)

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
        """Nothing to release: feeds belong to receivers, and reply polls end with their call."""


@dataclass
class _Waiter:
    selector: str
    what: str
    since: object   # msgq's update sequence when the request was about to be sent


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
            self._feed.stop()
        self._pool.shutdown(wait=wait)

    def join(self, timeout=None):
        self._thread.join(timeout)

    def _on_doc(self, doc):
        if is_message(doc) and self._regex.match(doc["selector"]):
            self._events.put(("doc", doc))

    # -- the loop
    def run(self):
        log.debug("%s listening on %s", self.bus.actor, ", ".join(self.patterns))
        # Our own feed, started before the first scan so that nothing falls between.
        self._feed = self.bus.message_feed(self._regex_text, self._on_doc, name=f"msgq-{self.name}")
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
                       leaseExpires=timestamp(_utc(now + self.lease)))
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
        try:
            message = Message.from_doc(job.doc)
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
            self._finish(job, error)
            self.handled += 1
            self._events.put(("done", job.doc["_id"]))

    def _keep_lease(self, job):
        while not job.finished.wait(self.lease / 3):
            with job.lock:
                doc = dict(job.doc, leaseExpires=timestamp(_utc(time.time() + self.lease)))
                try:
                    self.db.put(doc)
                    job.doc = doc
                except Conflict:
                    log.warning("lost the lease on message %s", doc["_id"])
                    return
                except Exception as exc:
                    log.warning("could not renew the lease on %s: %s", doc["_id"], exc)

    def _finish(self, job, error):
        with job.lock:
            doc = dict(job.doc, status="failed" if error else "done", handledAt=timestamp())
            doc.pop("leaseExpires", None)
            if error:
                doc["error"] = error[:2000]
            for _ in range(5):
                try:
                    self.db.put(doc)
                    return
                except Conflict:
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


def _utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def purge(db, older_than_seconds, batch=1000):
    """Delete handled ("done") messages created more than OLDER_THAN_SECONDS ago.

    Unconsumed, claimed and failed messages stay, whatever their age: they
    still matter to someone. Returns the number deleted.

    It walks msgq's primary index page by page: a Mango query per batch made
    PouchDB Server scan the whole index each time (over 7 minutes for 100,000
    messages, against seconds this way).
    """
    cutoff = timestamp(_utc(time.time() - older_than_seconds))
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
