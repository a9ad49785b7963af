"""RPC over the bus, both sides: a request carries ``msgbackID``; the reply goes to it.

The caller (:func:`call`) listens on a fresh reply selector before it sends
the request, then waits for the one reply (:class:`Reply`), which it marks
consumed without waiting for that write (nobody else takes it); the executor
(:class:`Executor`) is a receiver whose handler's result is the reply, sent
with the request's outcome in one write.
"""

import logging
import threading
import time
import uuid

from .bus import is_message
from .exceptions import Conflict, CouchError, DrawsError, InvalidRequest, RPCTimeout
from .receiver import Message, Receiver
from .timestamps import timestamp

log = logging.getLogger("draws.rpc")


def error_reply(text):
    return {"error": text}


def is_error(reply):
    return isinstance(reply, dict) and set(reply) == {"error"}


def new_reply_selector():
    """A fresh msgbackID (32 hex digits)."""
    return uuid.uuid4().hex


class Reply:
    """One message expected on SELECTOR (an RPC reply); see take().

    It is caught from creation on, so create it before sending the request.
    """

    def __init__(self, bus, selector, what=None):
        self.bus = bus
        self.selector = selector
        self.what = what or selector
        self.doc = None
        self.arrived = threading.Event()
        self._feed = bus.feed()
        self._feed.subscribe(self._on_doc)

    def _on_doc(self, doc):
        if doc.get("selector") == self.selector and not doc.get("consumed") and is_message(doc):
            self.doc = doc
            self.arrived.set()

    def take(self, timeout, patience=15.0):
        """Wait up to TIMEOUT s for the message; mark it done and return it (a Message), or None.

        Says every PATIENCE seconds that it still waits, so a person knows why
        nothing happens (the executor may be down, or a replication link).
        """
        deadline = time.monotonic() + timeout
        doc = None
        try:
            while not self.arrived.wait(max(0.0, min(patience, deadline - time.monotonic()))):
                # The feed may be cut off (CouchDB restarting): look directly now and then.
                doc = self._unread()
                if doc is not None or time.monotonic() >= deadline:
                    break
                log.warning("still waiting for a reply on %s (%.0f s so far)", self.what,
                            timeout - (deadline - time.monotonic()))
        finally:
            self._feed.unsubscribe(self._on_doc)
        doc = self.doc or doc
        if doc is None:
            return None
        doc.update(consumed=True, status="done", consumedBy=self.bus.identity,
                   consumedAt=timestamp(), handledAt=timestamp())
        # Only we listen on a reply selector: the caller need not wait for the mark.
        self.bus.write_later(doc)
        return Message.from_doc(doc)

    def _unread(self):
        try:
            docs = self.bus.db.find({"selector": self.selector, "consumed": False}, limit=1)
        except CouchError:
            return None
        return docs[0] if docs else None


def withdraw(bus, message_id, reason):
    """Take back a message nobody has taken yet (True), e.g. an RPC request we gave up on."""
    doc = bus.db.get_or_none(message_id)
    if doc is None or doc.get("consumed"):
        return False
    doc.update(consumed=True, status="failed", consumedBy=bus.identity,
               consumedAt=timestamp(), handledAt=timestamp(), error=f"withdrawn: {reason}")
    try:
        bus.db.put(doc)
        return True
    except Conflict:
        return False   # its receiver took it just now


def call(bus, selector, body, timeout=60.0):
    """Send BODY to SELECTOR and return the reply's body.

    Raises RPCTimeout when no reply comes within TIMEOUT seconds. A request
    its executor was interrupted serving is sent again (see Executor).
    """
    if selector.endswith(".*"):
        raise InvalidRequest(f"an RPC request goes to one executor, not to the group {selector!r}")
    deadline = time.monotonic() + timeout
    while True:
        msgback_id = new_reply_selector()
        expected = Reply(bus, msgback_id, what=f"'{selector}'")   # listen first: no reply slips by
        (request_id,) = bus.send(selector, body, msgback_id=msgback_id)
        reply = expected.take(max(0.0, deadline - time.monotonic()))
        if reply is None:
            # Take the request back if nobody has it yet, so no orphan reply appears later.
            withdraw(bus, request_id, f"no reply within {timeout:g} s")
            raise RPCTimeout(f"no reply from '{selector}' within {timeout:g} s "
                             f"(is its executor running and CouchDB replicating?)")
        if not (isinstance(reply.body, dict) and reply.body.get("interrupted")):
            return reply.body
        log.warning("'%s' stopped while serving our request: asking again", selector)


class Executor:
    """Serves SELECTOR: FUNCTION(body) -> result, replied to the caller.

    A request FUNCTION rejects (an InvalidRequest or other DrawsError) gets
    ``{"error": reason}`` as its reply, and the request message is marked
    failed with the same reason; the executor keeps serving.
    """

    def __init__(self, bus, selector, function, concurrency=1):
        self.bus = bus
        self.selector = selector
        self.function = function
        self.receiver = Receiver(bus, selector, self._handle, concurrency=concurrency,
                                 name=f"rpc-{selector}")

    def _handle(self, message):
        if not message.msgback_id:
            raise InvalidRequest("an RPC request needs a msgbackID to reply to")
        if message.attempts > 1:
            # Its executor died while serving it, perhaps half a minute ago (the lease).
            # Doing it now could change an OUS that has moved on since (a recipe on a
            # Delivered OUS), and its caller may be dead too: a caller still waiting
            # is told to ask again, and a reply already sent is not repeated.
            if not self.bus.db.find({"selector": message.msgback_id}, limit=1):
                message.respond({"error": "interrupted: ask again", "interrupted": True})
            log.warning("request %s was interrupted by its executor's end: not done now", message.id)
            return
        # The reply goes out with the request's outcome, in one write (Message.respond).
        try:
            message.respond(self.function(message.body))
        except DrawsError as exc:
            message.respond(error_reply(str(exc)))
            raise
        except Exception as exc:
            message.respond(error_reply(f"internal error: {type(exc).__name__}: {exc}"))
            raise

    def start(self):
        self.receiver.start()
        return self

    def run(self):
        self.receiver.run()

    def stop(self):
        self.receiver.stop()
