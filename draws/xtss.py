"""What actors use to call XTSS over the bus (spec §3); the service is draws.actors.xtss."""

from . import messages, rpc
from .exceptions import RemoteError


class XtssClient:
    """Asks XTSS over the bus (an RPC each: the ask_ methods); raises RemoteError with
    XTSS's reason on errors. Writing the status table directly is draws.ous.StatusTable's."""

    def __init__(self, bus, timeout=300.0):
        self.bus = bus
        self.timeout = timeout

    def request(self, selector, body):
        reply = rpc.call(self.bus, selector, body, timeout=self.timeout)
        if rpc.is_error(reply):
            raise RemoteError(f"XTSS refused {body.get('operation')}: {reply['error']}")
        return reply

    def ask_set_state(self, uid, state):
        return self.request(*messages.xtss_set("set-state", uid, state))

    def ask_set_substate(self, uid, substate):
        return self.request(*messages.xtss_set("set-substate", uid, substate))

    def ask_set_exec(self, uid, executive):
        return self.request(*messages.xtss_set("set-exec", uid, executive))

    def ask_clear_exec(self, uid):
        return self.request(*messages.xtss_set("clear-exec", uid))

    def ask_ouss(self, state, substate=".*"):
        return self.request(*messages.xtss_find(state, substate))
