#!/usr/bin/env python3
"""Torque/Maui: run a Pipeline Driver for each pipeline.process.<DRAWS_LOCATION> message.

At most MAXEXECUTIONS drivers run at once; further requests wait their turn.
"""

import click

from draws.actors.torque import Torque
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.option("-x", "--max-executions", "max_executions", type=click.IntRange(min=1), default=1,
              show_default=True, help="Pipeline Drivers run at once.")
@run_main("torque-maui")
def main(max_executions):
    Torque(Context.start("torque-maui", require=("location", "local_cache")), max_executions).run()


if __name__ == "__main__":
    main()
