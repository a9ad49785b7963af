"""RPC over the bus: a request carries ``msgbackID``; the reply goes to it."""

import logging
import time

from .exceptions import DrawsError, InvalidRequest, RPCTimeout

log = logging.getLogger("draws.rpc")


def error_reply(text):
    return {"error": text}


def is_error(reply):
    return isinstance(reply, dict) and set(reply) == {"error"}


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
        self.receiver = bus.receiver(selector, self._handle, concurrency=concurrency,
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


def call(bus, selector, body, timeout=60.0):
    """Send BODY to SELECTOR and return the reply's body.

    Raises RPCTimeout when no reply comes within TIMEOUT seconds. A request
    its executor was interrupted serving is sent again (see Executor).
    """
    if selector.endswith(".*"):
        raise InvalidRequest(f"an RPC request goes to one executor, not to the group {selector!r}")
    deadline = time.monotonic() + timeout
    while True:
        msgback_id = bus.new_reply_selector()
        waiter = bus.expect(msgback_id, what=f"'{selector}'")   # listen first: no reply slips by
        (request_id,) = bus.send(selector, body, msgback_id=msgback_id)
        reply = bus.take(waiter, max(0.0, deadline - time.monotonic()))
        if reply is None:
            # Take the request back if nobody has it yet, so no orphan reply appears later.
            bus.withdraw(request_id, f"no reply within {timeout:g} s")
            raise RPCTimeout(f"no reply from '{selector}' within {timeout:g} s "
                             f"(is its executor running and CouchDB replicating?)")
        if not (isinstance(reply.body, dict) and reply.body.get("interrupted")):
            return reply.body
        log.warning("'%s' stopped while serving our request: asking again", selector)
