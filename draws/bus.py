"""The message bus, sending side: messages and groups in the ``msgq`` table (spec §2, §3).

A message is a document of msgq; a group ``name.*`` is a document listing
its members, and a message sent to it is copied to each. Delivery, one
receiver per message, is :mod:`draws.receiver`'s; requests with a reply are
:mod:`draws.rpc`'s; deleting old messages is :mod:`draws.retention`'s.
What each message of the system carries is :mod:`draws.messages`'.

A process follows msgq once, whatever it listens to (:meth:`Bus.feed`): its
receivers and the RPC calls waiting for replies share that feed, and each
skips what is not for it (see :mod:`draws.feed` for why CouchDB does not
filter it).
"""

import logging
import os
import re
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, wait

from . import ids, shapes, tables
from .exceptions import Conflict, CouchError, InvalidRequest
from .feed import Feed
from .timestamps import timestamp

SELECTOR_RE = shapes.SELECTOR_RE

log = logging.getLogger("draws.bus")

LATER_WRITES_WAIT = 30.0   # seconds close() waits for the writes left to do


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


def is_message(doc):
    return isinstance(doc.get("selector"), str) and not doc.get("_deleted") \
        and not doc["_id"].startswith("_design/")


class Bus:
    """Sends messages and follows msgq. One per process is enough; it is thread-safe."""

    def __init__(self, server, actor="draws"):
        self.db = server.db(tables.MSGQ)
        self.actor = actor
        self.origin_ip = _origin_ip()
        self.identity = f"{actor}@{socket.gethostname()}:{os.getpid()}"
        self._feed = None        # msgq's changes, followed from the first need on
        self._writer = None      # writes nobody waits for (write_later), from the first on
        self._pending = set()
        self._lock = threading.Lock()

    def send(self, selector, body, msgback_id=None):
        """Send BODY to SELECTOR (a group ``name.*`` sends a copy to each member).

        Returns the ids of the message documents written.
        """
        check_selector(selector)
        if selector.endswith(".*"):
            group = ids.get(self.db, selector)
            if group is None:
                raise InvalidRequest(f"no group {selector!r}: define it before sending to it")
            why = shapes.check(tables.MSGQ, group)
            if why:
                raise InvalidRequest(f"group {selector!r} is refused: {why}")
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
        doc = {"_id": ids.doc_id(f"{created}-{uuid.uuid4().hex}"), "creationTimestamp": created,
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
        return self.db.update(ids.doc_id(name), change, create=dict)

    def feed(self):
        """This process's one feed of msgq, started on first use: its receivers and
        the RPC calls waiting for replies subscribe to it."""
        with self._lock:
            if self._feed is None:
                self._feed = Feed(self.db, name=f"msgq-{self.actor}", on_lost=self._tables_lost).start()
            return self._feed

    def write_later(self, doc):
        """Write DOC to msgq in the background, in order, for a caller that need not wait
        for it (e.g. a reply it has read, marked consumed). close(), and the process's
        normal exit, wait for what is left."""
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"msgq-writes-{self.actor}")
            future = self._writer.submit(self._put_quietly, doc)
            self._pending.add(future)
        future.add_done_callback(self._written)

    def _written(self, future):
        with self._lock:
            self._pending.discard(future)

    def _put_quietly(self, doc):
        try:
            self.db.put(doc)
        except Conflict:
            pass   # our own retried write landed
        except CouchError as exc:
            log.warning("could not write message %s: %s", doc["_id"], exc)

    def _tables_lost(self):
        """msgq lost its data: so did the server's other tables, most likely. Make them
        again (idempotent: every actor does it when it notices)."""
        tables.ensure(self.db.server)

    def close(self):
        """Stop following msgq (receivers of this bus stop hearing of new messages),
        once the writes left to do (write_later) are done."""
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=LATER_WRITES_WAIT)
        with self._lock:
            if self._feed is not None:
                self._feed.stop()
                self._feed = None
