"""DRA, the Data Reducer Assignment tool: send OUSs to a site's Pipeline.

An OUS that is ReadyForProcessing with a Pipeline recipe is assigned to an
executive (a site): XTSS sets it Processing and flags the executive, and
the site's Torque/Maui gets ``pipeline.process.<LOC>``.
"""

from .. import messages, tables
from ..config import LOCATIONS
from ..exceptions import InvalidRequest
from ..ous import Refused, is_pipeline_recipe
from ..owners import new_step
from ..prompt import Console, pick_loop
from ..watch import Trigger

STATE = "ReadyForProcessing"
PIPELINE = "^Pipeline"


def check_location(location):
    if not location:
        raise InvalidRequest(f"DRA needs the site to assign OUSs to: use -a LOCATION "
                             f"(one of {', '.join(LOCATIONS)}) or set DRAWS_LOCATION")
    where = location.upper()
    if where not in LOCATIONS:
        raise InvalidRequest(f"{location!r} is not a location (one of {', '.join(LOCATIONS)}): "
                             "use -a LOCATION or set DRAWS_LOCATION")
    return where


def is_ready(doc):
    """Whether the status document DOC is an OUS DRA lists."""
    return doc.get("state") == STATE and is_pipeline_recipe(doc.get("substate"))


class Dra:
    """Assigns to LOCATION: at a prompt, or (AUTO) every such OUS as it appears."""

    def __init__(self, ctx, location, auto=False):
        self.ctx = ctx
        self.location = check_location(location)
        self.auto = auto

    def run(self):
        """The prompt's exit status; with AUTO, never returns."""
        return self.assign_all() if self.auto else self.interactive()

    def ready(self):
        """ReadyForProcessing OUSs with a Pipeline recipe, by UID (through XTSS)."""
        return self.ctx.xtss.ask_ouss(STATE, PIPELINE)

    def assign(self, ous):
        """Assign OUS in one guarded step (executive, Processing, the request); Refused,
        saying who did, when another DRA (or a launcher) was first or its recipe changed."""
        uid, recipe = ous["entityId"], ous.get("substate")
        assignment = new_step()
        try:
            self.ctx.xtss.transition(
                uid, assignment, [STATE], "Processing", fromSubstate=[recipe], assign=self.location,
                messages=[messages.process(self.location, ous.get("progID"), uid, recipe, assignment)])
        except Refused as exc:
            raise Refused(f"{uid} was not assigned: {exc}") from None
        self.ctx.log.info("%s (%s, %s) assigned to %s", uid, ous.get("progID"), recipe, self.location)

    def interactive(self, console=None):
        console = console or Console()
        console.say(f"DRA: assigning OUSs to {self.location}.")

        def act(ous):
            self.assign(ous)
            console.say(f"{ous['entityId']} is Processing at {self.location}.")
        return pick_loop(console, "OUSs ready for Pipeline processing",
                         ("UID", "Program", "Recipe"), self.ready,
                         lambda o: (o["entityId"], o.get("progID", ""), o.get("substate", "")), act,
                         follow=(self.ctx.server.db(tables.STATUS), is_ready))

    def assign_all(self):
        """Assign every such OUS as it appears; never returns."""
        self.ctx.log.info("assigning every OUS ready for Pipeline processing to %s", self.location)

        def work():
            for ous in self.ready():
                try:
                    self.assign(ous)
                except Refused as exc:
                    self.ctx.log.info("%s", exc)
        Trigger().watch(self.ctx.server.db(tables.STATUS), is_ready).run(work)
