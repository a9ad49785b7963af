"""The launcher: put an OUS in ReadyForProcessing (and optionally start it)."""

from .. import messages
from ..config import LOCATIONS
from ..exceptions import InvalidRequest
from ..ous import MANUAL_RECIPE, StatusTable
from ..owners import new_step, outbox, send_outbox


class Launcher:
    """Creates or resets UID; with EXECUTIVE also assigns it and sends it to Torque/Maui.

    An OUS mid-life-cycle (Processing to DeliveryInProgress) is refused, naming
    who moved it there, unless FORCE: then what it interrupts is logged, and the
    interrupted run's results are refused (they belong to an assignment now over).
    """

    def __init__(self, ctx, progid, uid, recipe=None, executive=None, force=False):
        if executive is not None:
            executive = executive.upper()
            if executive not in LOCATIONS:
                raise InvalidRequest(f"{executive!r} is not an executive (one of {', '.join(LOCATIONS)})")
            if recipe is None or recipe == MANUAL_RECIPE:
                raise InvalidRequest("an executive needs a Pipeline recipe: ManualCalibration is never processed")
        self.ctx = ctx
        self.progid, self.uid, self.recipe, self.executive = progid, uid, recipe, executive
        self.force = force

    def run(self):
        ctx, uid, executive = self.ctx, self.uid, self.executive
        status = StatusTable(ctx.server)
        assign = None
        if executive:
            # Reset and assignment in one write, the request in its outbox: a launcher
            # killed before it sends leaves the sending to XTSS's reconciler.
            step = new_step()
            assign = {"step": step, "assign": executive, "messages": outbox(
                ctx.bus, step, [messages.process(executive, self.progid, uid, self.recipe, step)])}
        doc, interrupted = status.reset(self.progid, uid, self.recipe, by=ctx.bus.identity,
                                        force=self.force, assign=assign)
        if interrupted:
            ctx.log.warning("%s was %s: interrupting it", uid, interrupted)
        ctx.log.info("%s (%s) is ReadyForProcessing%s", uid, self.progid,
                     f" with recipe {self.recipe}" if self.recipe else "")
        if executive:
            send_outbox(ctx.bus.db, status, doc)
            ctx.log.info("%s is Processing at %s: sent to %s", uid, executive,
                         messages.process_selector(executive))
