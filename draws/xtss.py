"""What actors use to call XTSS over the bus (spec §3); the service is draws.actors.xtss."""

import logging

from . import messages, rpc, shapes, tables
from .exceptions import RemoteError
from .ous import Refused

log = logging.getLogger("draws.xtss")


class Unsupported(RemoteError):
    """XTSS does not know the operation (the original's knows only the plain ones)."""


class XtssClient:
    """Asks XTSS over the bus (an RPC each: the ask_ methods); raises RemoteError with
    XTSS's reason on errors. Writing the status table directly is draws.ous.StatusTable's."""

    def __init__(self, bus, timeout=300.0):
        self.bus = bus
        self.timeout = timeout
        self.guarded = True   # until XTSS says it has no guarded transitions (the original's)

    def request(self, selector, body):
        return self.answer(body, rpc.call(self.bus, selector, body, timeout=self.timeout))

    @staticmethod
    def answer(body, reply):
        """The REPLY to request BODY as the caller gets it: RemoteError, Refused or the reply."""
        if rpc.is_error(reply):
            operation = body.get("operation")
            error = str(reply["error"])
            kind = Unsupported if error.startswith(f"unknown operation {operation!r}") else RemoteError
            raise kind(f"XTSS refused {operation}: {error}")
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
        who moved it there, when it is not in a state of EXPECT. Served by an XTSS without
        guarded steps (the original's), the step is done unguarded with its plain operations."""
        if self.guarded:
            try:
                return self.request(*messages.xtss_transition(uid, step, self.bus.identity, expect, to, **more))
            except Unsupported as exc:
                self._unguarded(exc)
        return self._plain_transition(uid, to, **more)

    def renew(self, uid, step, lease):
        if self.guarded:
            try:
                return self.request(*messages.xtss_renew(uid, step, lease))
            except Unsupported as exc:
                self._unguarded(exc)
        return messages.OK   # no leases there: nothing to renew

    def _unguarded(self, exc):
        """From now on (for this process's life), plain operations only."""
        self.guarded = False
        log.warning("%s: XTSS lacks guarded transitions (the original's XTSS?), so this "
                    "process's steps are unguarded from now on: two actors may both move an OUS", exc)

    def _plain_transition(self, uid, to, **step):
        """A step with the original's operations, in the order its actors use: executive
        and substate first, the state last, so whoever sees the new state sees the rest;
        the step's messages after it, so their receiver finds the OUS moved. Its guards
        (fromSubstate, assignment, owner) and reason and lease have no plain equivalent."""
        if step.get("assign"):
            self.ask_set_exec(uid, step["assign"])
        if step.get("clearExec"):
            self.ask_clear_exec(uid)
        if "substate" in step:   # emptied with "", as the original's actors do
            self.ask_set_substate(uid, step["substate"] or "")
        for state in [*(step.get("through") or ()), *([to] if to else [])]:
            self.ask_set_state(uid, state)
        if step.get("messages"):
            self.bus.send_all(step["messages"])
        return messages.OK
