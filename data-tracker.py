#!/usr/bin/env python3
"""Data Tracker: mark ingested OUSs Delivered once all their products are in the local NGAS.

Runs at the ARC. Checks each product's NGAS checksum against the file in
$DRAWS_LOCAL_CACHE (or against the archived bytes when the file is not
there), and reacts to changes of the status, delivery-status and ngas tables.
"""

import click

from draws.actors.tracker import Tracker
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@run_main("data-tracker")
def main():
    Tracker(Context.start("data-tracker")).run()


if __name__ == "__main__":
    main()
