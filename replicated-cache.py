#!/usr/bin/env python3
"""The replicated cache: pull files cached at other sites, serve this site's cache.

Listens on cached.<DRAWS_LOCATION>: a file cached at another site is pulled
with rsync from that site's cache (a path or user@host:path); weblogs are
expanded into weblogs/; at JAO the weblog zip is archived in NGAS. The cache
is served over HTTP for people: the list of weblogs at /weblogs/, each
weblog, and the products directories; sandboxed, so no page in it runs a
script.

\b
Example, JAO on the same host as the EU ARC:
    ./replicated-cache.py -euc $DRAWS_EU_CACHE -p 8001
"""

import click

from draws.actors.replicator import Replicator
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.option("-eac", "ea", metavar="EA", help="EA's cache location (default $DRAWS_EA_CACHE).")
@click.option("-euc", "eu", metavar="EU", help="EU's cache location (default $DRAWS_EU_CACHE).")
@click.option("-nac", "na", metavar="NA", help="NA's cache location (default $DRAWS_NA_CACHE).")
@click.option("-p", "--port", default=8000, show_default=True, help="HTTP port of the cache.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on (0.0.0.0 for every interface).")
@run_main("replicated-cache")
def main(ea, eu, na, port, host):
    ctx = Context.start("replicated-cache", require=("location", "local_cache"))
    Replicator(ctx, {"EA": ea, "EU": eu, "NA": na}, port, host).run()


if __name__ == "__main__":
    main()
