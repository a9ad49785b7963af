#!/usr/bin/env python3
"""Delete every document of the six DRAWS tables. Asks nothing: use with care.

Indexes are kept; no other database on the server is touched.
"""

import click

from draws.actors.cleaner import Cleaner
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@run_main("clear-all-dbs")
def main():
    Cleaner(Context.start("clear-all-dbs")).run()


if __name__ == "__main__":
    main()
