"""AQUA Batch Helper: give each ReadyForProcessing OUS without a recipe a random one.

Five recipes are Pipeline recipes and one, ManualCalibration (about one time
in six), is never processed by the mockup. DRAWS_SEED makes the sequence of
choices repeatable.
"""

from .. import tables
from ..ous import RECIPES, Refused, StatusTable
from ..owners import new_step
from ..watch import Trigger

STATE = "ReadyForProcessing"


class BatchHelper:
    def __init__(self, ctx):
        self.ctx = ctx
        self.rng = ctx.settings.rng("aqua-batch-helper")
        self.status = StatusTable(ctx.server)

    def give_recipes(self):
        # Read from the table, as the original's helper does: the original's XTSS
        # matches substates with a Mango $regex, which never finds a null one (spec §9).
        for ous in self.status.find(STATE, "^$"):   # null or ""
            recipe = self.rng.choice(RECIPES)
            try:   # guarded: a recipe someone gave it meanwhile stays
                self.ctx.xtss.transition(ous["entityId"], new_step(), [STATE], fromSubstate=[None],
                                         substate=recipe)
            except Refused as exc:
                self.ctx.log.info("%s", exc)
                continue
            self.ctx.log.info("%s (%s): recipe %s", ous["entityId"], ous.get("progID"), recipe)

    def run(self):
        """Set recipes now and whenever an OUS lacking one appears; never returns."""
        self.ctx.log.info("giving recipes to OUSs ReadyForProcessing without one")
        Trigger().watch(self.ctx.server.db(tables.STATUS),
                        lambda doc: doc.get("state") == STATE and not doc.get("substate")
                        ).run(self.give_recipes)
