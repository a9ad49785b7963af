"""The launcher: put an OUS in ReadyForProcessing (and optionally start it)."""

from ..config import LOCATIONS
from ..exceptions import InvalidRequest
from ..ous import EXECUTIVE_FLAG, MANUAL_RECIPE, StatusTable


def launch(ctx, progid, uid, recipe=None, executive=None):
    """Create or reset UID; with EXECUTIVE also assign it and send it to Torque/Maui."""
    if executive is not None:
        executive = executive.upper()
        if executive not in LOCATIONS:
            raise InvalidRequest(f"{executive!r} is not an executive (one of {', '.join(LOCATIONS)})")
        if recipe is None or recipe == MANUAL_RECIPE:
            raise InvalidRequest("an executive needs a Pipeline recipe: ManualCalibration is never processed")
    status = StatusTable(ctx.server)
    status.reset(progid, uid, recipe)
    ctx.log.info("%s (%s) is ReadyForProcessing%s", uid, progid, f" with recipe {recipe}" if recipe else "")
    if executive:
        status.set_state(uid, "Processing")
        status.set_flag(uid, EXECUTIVE_FLAG, executive)
        ctx.bus.send(f"pipeline.process.{executive}",
                     {"progID": progid, "ousUID": uid, "recipe": recipe})
        ctx.log.info("%s is Processing at %s: sent to pipeline.process.%s", uid, executive, executive)
