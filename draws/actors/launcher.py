"""The launcher: put an OUS in ReadyForProcessing (and optionally start it)."""

from .. import messages
from ..config import LOCATIONS
from ..exceptions import InvalidRequest
from ..ous import EXECUTIVE_FLAG, MANUAL_RECIPE, StatusTable


class Launcher:
    """Creates or resets UID; with EXECUTIVE also assigns it and sends it to Torque/Maui."""

    def __init__(self, ctx, progid, uid, recipe=None, executive=None):
        if executive is not None:
            executive = executive.upper()
            if executive not in LOCATIONS:
                raise InvalidRequest(f"{executive!r} is not an executive (one of {', '.join(LOCATIONS)})")
            if recipe is None or recipe == MANUAL_RECIPE:
                raise InvalidRequest("an executive needs a Pipeline recipe: ManualCalibration is never processed")
        self.ctx = ctx
        self.progid, self.uid, self.recipe, self.executive = progid, uid, recipe, executive

    def run(self):
        ctx, uid, executive = self.ctx, self.uid, self.executive
        status = StatusTable(ctx.server)
        status.reset(self.progid, uid, self.recipe)
        ctx.log.info("%s (%s) is ReadyForProcessing%s", uid, self.progid,
                     f" with recipe {self.recipe}" if self.recipe else "")
        if executive:
            status.set_state(uid, "Processing")
            status.set_flag(uid, EXECUTIVE_FLAG, executive)
            selector, body = messages.process(executive, self.progid, uid, self.recipe)
            ctx.bus.send(selector, body)
            ctx.log.info("%s is Processing at %s: sent to %s", uid, executive, selector)
