#!/usr/bin/env python3
"""XTSS: serve OUS status requests on the selector `xtss`.

Operations: set-state, set-substate, set-exec, clear-exec and
get-ouss-by-state-substate (the original's), transition and renew (guarded
steps of the life cycle). set-state refuses a change of state that is not a
life-cycle transition, unless --lenient (for experiments). XTSS also finds
OUSs whose owner is gone and re-drives them, or moves them to
ProcessingProblem with the reason.
"""

import click

from draws.actors.xtss import Xtss
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.option("--lenient", is_flag=True, help="Let set-state make any change of state, as the original did.")
@click.option("--strict", is_flag=True, hidden=True, help="The default (kept for old command lines).")
@click.option("-n", "--workers", default=2, show_default=True, type=click.IntRange(1, 32),
              help="Requests served at once.")
@run_main("xtss")
def main(lenient, strict, workers):
    Xtss(Context.start("xtss"), strict=not lenient, workers=workers).run()


if __name__ == "__main__":
    main()
