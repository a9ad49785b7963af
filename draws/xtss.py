"""What actors use to call XTSS over the bus (spec §3); the service is draws.actors.xtss."""

from . import messages, rpc, shapes, tables
from .exceptions import RemoteError
from .ous import Refused


class XtssClient:
    """Asks XTSS over the bus (an RPC each: the ask_ methods); raises RemoteError with
    XTSS's reason on errors. Writing the status table directly is draws.ous.StatusTable's."""

    def __init__(self, bus, timeout=300.0):
        self.bus = bus
        self.timeout = timeout

    def request(self, selector, body):
        return self.answer(body, rpc.call(self.bus, selector, body, timeout=self.timeout))

    @staticmethod
    def answer(body, reply):
        """The REPLY to request BODY as the caller gets it: RemoteError, Refused or the reply."""
        if rpc.is_error(reply):
            raise RemoteError(f"XTSS refused {body.get('operation')}: {reply['error']}")
        if isinstance(reply, dict) and messages.REFUSED in reply:
            raise Refused(reply[messages.REFUSED])
        return reply

    def ask_set_state(self, uid, state, reason=None):
        return self.request(*messages.xtss_set("set-state", uid, state, reason))

    def ask_set_substate(self, uid, substate):
        return self.request(*messages.xtss_set("set-substate", uid, substate))

    def ask_set_exec(self, uid, executive):
        return self.request(*messages.xtss_set("set-exec", uid, executive))

    def ask_clear_exec(self, uid):
        return self.request(*messages.xtss_set("clear-exec", uid))

    def ask_ouss(self, state, substate=".*"):
        """The well-formed OUS documents in STATE whose substate matches SUBSTATE (a regex).

        Checked here too: another XTSS (the original's) returns what its table holds.
        """
        ouss = self.request(*messages.xtss_find(state, substate))
        if not isinstance(ouss, list):
            raise RemoteError(f"XTSS answered {messages.FIND} with {type(ouss).__name__}, not a list")
        return shapes.well_formed(tables.STATUS, ouss)

    def transition(self, uid, step, expect, to=None, **more):
        """A guarded step (messages.check_transition); Refused, saying where the OUS is and
        who moved it there, when it is not in a state of EXPECT."""
        return self.request(*messages.xtss_transition(uid, step, self.bus.identity, expect, to, **more))

    def renew(self, uid, step, lease):
        return self.request(*messages.xtss_renew(uid, step, lease))
