#!/usr/bin/env python3
"""Create or reset an OUS in ReadyForProcessing.

With RECIPE its Pipeline recipe is set at once; with EXECUTIVE (JAO, EA, EU
or NA) it is also assigned and sent to that site's Torque/Maui. An OUS that
is mid-life-cycle (Processing to DeliveryInProgress) is left alone unless
--force, which interrupts what it is doing.

Example: ./launcher.py 2015.1.00657.S uid://X1/X1/Xb0 PipelineCalibration EU
"""

import click

from draws.actors.launcher import Launcher
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.argument("progid")
@click.argument("ousuid")
@click.argument("recipe", required=False)
@click.argument("executive", required=False)
@click.option("--force", is_flag=True, help="Reset the OUS even mid-life-cycle (its run's results are then refused).")
@run_main("launcher")
def main(progid, ousuid, recipe, executive, force):
    Launcher(Context.start("launcher"), progid, ousuid, recipe, executive, force).run()


if __name__ == "__main__":
    main()
