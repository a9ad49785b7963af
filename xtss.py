#!/usr/bin/env python3
"""XTSS: serve OUS status requests on the selector `xtss`.

Operations: set-state, set-substate, set-exec, clear-exec and
get-ouss-by-state-substate. Like the original it does not check
transitions, unless --strict is given.
"""

import click

from draws.actors.xtss import Xtss
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.option("--strict", is_flag=True, help="Reject state changes that are not life-cycle transitions.")
@click.option("-n", "--workers", default=2, show_default=True, type=click.IntRange(1, 32),
              help="Requests served at once.")
@run_main("xtss")
def main(strict, workers):
    Xtss(Context.start("xtss"), strict, workers).run()


if __name__ == "__main__":
    main()
