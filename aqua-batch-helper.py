#!/usr/bin/env python3
"""AQUA Batch Helper: give a Pipeline recipe to every ReadyForProcessing OUS lacking one.

Runs in the background and reacts to status changes; about one OUS in six
gets ManualCalibration, which the mockup never processes.
"""

import click

from draws.actors.batch_helper import BatchHelper
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@run_main("aqua-batch-helper")
def main():
    BatchHelper(Context.start("aqua-batch-helper")).run()


if __name__ == "__main__":
    main()
