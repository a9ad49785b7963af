"""RPC over the bus: a request carries ``msgbackID``; the reply goes to it."""

import logging

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
        if message.attempts > 1 and self.bus.db.find({"selector": message.msgback_id}, limit=1):
            # Its executor died after replying: doing it again would repeat a state
            # change long after the caller moved on (e.g. a recipe on a Delivered OUS).
            log.warning("request %s was answered before its executor stopped: not done again", message.id)
            return
        try:
            result = self.function(message.body)
        except DrawsError as exc:
            self.bus.send(message.msgback_id, error_reply(str(exc)))
            raise
        except Exception as exc:
            self.bus.send(message.msgback_id, error_reply(f"internal error: {type(exc).__name__}: {exc}"))
            raise
        self.bus.send(message.msgback_id, result)

    def start(self):
        self.receiver.start()
        return self

    def run(self):
        self.receiver.run()

    def stop(self):
        self.receiver.stop()


def call(bus, selector, body, timeout=60.0):
    """Send BODY to SELECTOR and return the reply's body.

    Raises RPCTimeout when no reply comes within TIMEOUT seconds.
    """
    if selector.endswith(".*"):
        raise InvalidRequest(f"an RPC request goes to one executor, not to the group {selector!r}")
    msgback_id = bus.new_reply_selector()
    waiter = bus.expect(msgback_id, what=f"'{selector}'")   # listen first: no reply slips by
    (request_id,) = bus.send(selector, body, msgback_id=msgback_id)
    reply = bus.take(waiter, timeout)
    if reply is None:
        # Take the request back if nobody has it yet, so no orphan reply appears later.
        bus.withdraw(request_id, f"no reply within {timeout:g} s")
        raise RPCTimeout(f"no reply from '{selector}' within {timeout:g} s "
                         f"(is its executor running and CouchDB replicating?)")
    return reply.body
