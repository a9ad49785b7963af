#!/usr/bin/env python3
"""DRA: list the OUSs ready for Pipeline processing, read a UID, assign it.

The UID is assigned to LOCATION (default $DRAWS_LOCATION): the OUS becomes
Processing and the site's Torque/Maui gets it. An empty line refreshes the
list; q or end of input quits. With --auto every such OUS is assigned as it
appears, without questions.

Example: ./dra.py -a EU
"""

import sys

import click

from draws.actors.dra import Dra
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.option("-a", "--location", help="Executive to assign to (JAO, EA, EU or NA).")
@click.option("--auto", is_flag=True, help="Assign every ready OUS as it appears (no prompt).")
@run_main("dra")
def main(location, auto):
    ctx = Context.start("dra")
    sys.exit(Dra(ctx, location or ctx.settings.location, auto).run())


if __name__ == "__main__":
    main()
