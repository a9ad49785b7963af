"""XTSS: the one service that changes OUS status on request (spec §3).

It serves the selector ``xtss`` (an RPC executor); what a request carries
is in :mod:`draws.messages`, the client actors call it with is
:class:`draws.xtss.XtssClient`. Beside the original's operations it does the
guarded steps of the life cycle (``transition``: a compare-and-set, its
messages sent with it through the OUS's outbox) and runs the reconciler
that finds OUSs whose owner is gone (:mod:`draws.owners`).
"""

from .. import messages
from ..exceptions import InvalidRequest, NotFound
from ..ous import EXECUTIVE_FLAG, Refused, StatusTable
from ..owners import Reconciler, outbox, send_outbox
from ..rpc import Executor


class Xtss:
    def __init__(self, ctx, strict=True, workers=2):
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
            if operation == messages.TRANSITION:
                return self.transition(uid, value)
            if operation == messages.RENEW:
                self.status.renew(uid, *value)
                return messages.OK
            if operation == "set-state":
                self.status.set_state(uid, value, strict=self.strict, reason=body.get("reason"))
            elif operation == "set-substate":
                self.status.set_substate(uid, value)
            elif operation == "set-exec":
                self.status.set_flag(uid, EXECUTIVE_FLAG, value)
            else:
                self.status.clear_flag(uid, EXECUTIVE_FLAG)
        except Refused as exc:
            # Not an error: someone else moved the OUS first. The caller is told who.
            self.ctx.log.info("%s %s refused: %s", operation, uid, exc)
            return {messages.REFUSED: str(exc)}
        except NotFound as exc:
            raise InvalidRequest(str(exc)) from None
        self.ctx.log.info("%s %s %s%s", operation, uid, "" if value is None else value,
                          f" ({body['reason'][:200]})" if body.get("reason") else "")
        return messages.OK

    def transition(self, uid, t):
        """One guarded step; its messages go out after the write that records them."""
        t = dict(t, messages=outbox(self.ctx.bus, t["step"], t["messages"]))
        doc = self.status.transition(uid, t)
        send_outbox(self.ctx.bus.db, self.status, doc)
        self.ctx.log.info("%s: %s -> %s%s (step %s by %s)", uid, "/".join(t["from"]), doc["state"],
                          f", sent {len(t['messages'])} message(s)" if t["messages"] else "",
                          t["step"], t.get("by"))
        return messages.OK

    def run(self):
        """Serve requests and reconcile; never returns."""
        self.ctx.log.info("serving selector '%s' with CouchDB at %s (%s transitions)", messages.XTSS_SELECTOR,
                          self.ctx.server.url, "strict" if self.strict else "lenient")
        Reconciler(self.status, self.ctx.bus.db, self.ctx.bus.identity).start()
        Executor(self.ctx.bus, messages.XTSS_SELECTOR, self, concurrency=self.workers).run()
