"""XTSS: the one service that changes OUS status on request (spec §3).

``Service`` holds the operations (the executor side); ``Client`` is what
actors use to call them over the bus.
"""

import logging

from . import rpc
from .exceptions import InvalidRequest, NotFound, RemoteError
from .config import LOCATIONS
from .ous import EXECUTIVE_FLAG, StatusTable, show

log = logging.getLogger("draws.xtss")

SELECTOR = "xtss"
OK = 201
OPERATIONS = ("set-state", "set-substate", "set-exec", "clear-exec", "get-ouss-by-state-substate")


class Service:
    def __init__(self, server, strict=False):
        self.status = StatusTable(server)
        self.strict = strict

    def __call__(self, body):
        if not isinstance(body, dict):
            raise InvalidRequest(f"an XTSS request is a JSON object, not {type(body).__name__}")
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise InvalidRequest(f"unknown operation {operation!r} (one of {', '.join(OPERATIONS)})")
        if operation == "get-ouss-by-state-substate":
            state, substate = _field(body, "state"), body.get("substate", ".*")
            ouss = self.status.find(state, substate)
            log.info("%s %s/%s: %d OUS(s)", operation, state, substate, len(ouss))
            return ouss
        uid = _field(body, "ousUID")
        value = _field(body, "value") if operation != "clear-exec" else None
        try:
            if operation == "set-state":
                self.status.set_state(uid, value, strict=self.strict)
            elif operation == "set-substate":
                self.status.set_substate(uid, value)
            elif operation == "set-exec":
                if value not in LOCATIONS:
                    raise InvalidRequest(f"set-exec needs an executive name ({', '.join(LOCATIONS)}), "
                                         f"not {show(value)}")
                self.status.set_flag(uid, EXECUTIVE_FLAG, value)
            else:
                self.status.clear_flag(uid, EXECUTIVE_FLAG)
        except NotFound as exc:
            raise InvalidRequest(str(exc)) from None
        log.info("%s %s %s", operation, uid, "" if value is None else value)
        return OK


def _field(body, name):
    if name not in body:
        raise InvalidRequest(f"{body.get('operation')} needs the field {name!r}")
    return body[name]


class Client:
    """Calls XTSS over the bus; raises RemoteError with XTSS's reason on errors."""

    def __init__(self, bus, timeout=300.0):
        self.bus = bus
        self.timeout = timeout

    def request(self, body):
        reply = rpc.call(self.bus, SELECTOR, body, timeout=self.timeout)
        if rpc.is_error(reply):
            raise RemoteError(f"XTSS refused {body.get('operation')}: {reply['error']}")
        return reply

    def set_state(self, uid, state):
        return self.request({"operation": "set-state", "ousUID": uid, "value": state})

    def set_substate(self, uid, substate):
        return self.request({"operation": "set-substate", "ousUID": uid, "value": substate})

    def set_exec(self, uid, executive):
        return self.request({"operation": "set-exec", "ousUID": uid, "value": executive})

    def clear_exec(self, uid):
        return self.request({"operation": "clear-exec", "ousUID": uid, "value": None})

    def find(self, state, substate=".*"):
        return self.request({"operation": "get-ouss-by-state-substate",
                             "state": state, "substate": substate})
