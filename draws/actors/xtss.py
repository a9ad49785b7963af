"""XTSS: the one service that changes OUS status on request (spec §3).

It serves the selector ``xtss`` (an RPC executor); what a request carries
is in :mod:`draws.messages`, the client actors call it with is
:class:`draws.xtss.Client`.
"""

from .. import messages
from ..exceptions import InvalidRequest, NotFound
from ..ous import EXECUTIVE_FLAG, StatusTable
from ..rpc import Executor


class Xtss:
    def __init__(self, ctx, strict=False, workers=2):
        self.ctx = ctx
        self.status = StatusTable(ctx.server)
        self.strict = strict
        self.workers = workers

    def __call__(self, body):
        operation, uid, value = messages.check_xtss(body)
        if operation == messages.FIND:
            state, substate = uid, value
            ouss = self.status.find(state, substate)
            self.ctx.log.info("%s %s/%s: %d OUS(s)", operation, state, substate, len(ouss))
            return ouss
        try:
            if operation == "set-state":
                self.status.set_state(uid, value, strict=self.strict)
            elif operation == "set-substate":
                self.status.set_substate(uid, value)
            elif operation == "set-exec":
                self.status.set_flag(uid, EXECUTIVE_FLAG, value)
            else:
                self.status.clear_flag(uid, EXECUTIVE_FLAG)
        except NotFound as exc:
            raise InvalidRequest(str(exc)) from None
        self.ctx.log.info("%s %s %s", operation, uid, "" if value is None else value)
        return messages.OK

    def run(self):
        """Serve requests; never returns."""
        self.ctx.log.info("serving selector '%s' with CouchDB at %s%s", messages.XTSS_SELECTOR,
                          self.ctx.server.url, " (strict transitions)" if self.strict else "")
        Executor(self.ctx.bus, messages.XTSS_SELECTOR, self, concurrency=self.workers).run()
