#!/usr/bin/env python3
"""AQUA/QA2: store Pipeline reports in the background; review OUSs in the foreground.

Lists the OUSs ready for review and reads a UID; shows that OUS's Pipeline
report and weblog URL and asks [F]ail, [P]ass, [S]emipass, [C]ancel. An empty
line refreshes the list; q or end of input quits. With --auto every OUS is
given the same answer as soon as its report is stored, and a review left
half-way by a stopped AQUA/QA2 is finished (so not beside a person reviewing).

Example: ./aqua-qa2.py --cache-url http://localhost:8001
"""

import sys

import click

from draws.actors.qa2 import Qa2
from draws.config import DEFAULT_CACHE_URL
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.option("--auto", "answer", type=click.Choice(["P", "S", "F"], case_sensitive=False),
              help="Review every OUS with this answer, without questions.")
@click.option("--cache-url", show_default=f"$DRAWS_CACHE_URL or {DEFAULT_CACHE_URL}",
              help="Where the weblogs are served.")
@run_main("aqua-qa2")
def main(answer, cache_url):
    ctx = Context.start("aqua-qa2")
    sys.exit(Qa2(ctx, cache_url or ctx.settings.cache_url, answer and answer.upper()).run())


if __name__ == "__main__":
    main()
