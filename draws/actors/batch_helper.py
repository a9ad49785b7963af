"""AQUA Batch Helper: give each ReadyForProcessing OUS without a recipe a random one.

Five recipes are Pipeline recipes and one, ManualCalibration (about one time
in six), is never processed by the mockup. DRAWS_SEED makes the sequence of
choices repeatable.
"""

from .. import tables
from ..ous import RECIPES
from ..watch import Trigger

STATE = "ReadyForProcessing"


def run(ctx):
    """Set recipes now and whenever an OUS lacking one appears; never returns."""
    rng = ctx.settings.rng("aqua-batch-helper")

    def relevant(doc):
        return doc.get("state") == STATE and not doc.get("substate")

    def work():
        for ous in ctx.xtss.find(STATE, "^$"):   # a null substate counts as ""
            recipe = rng.choice(RECIPES)
            ctx.xtss.set_substate(ous["entityId"], recipe)
            ctx.log.info("%s (%s): recipe %s", ous["entityId"], ous.get("progID"), recipe)

    ctx.log.info("giving recipes to OUSs ReadyForProcessing without one")
    Trigger().watch(ctx.server.db(tables.STATUS), relevant).run(work)
