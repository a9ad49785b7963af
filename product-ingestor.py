#!/usr/bin/env python3
"""Product Ingestor: on ingest.JAO, archive an OUS's products in NGAS.

Takes the products from $DRAWS_LOCAL_CACHE (waiting for them if they are
still being replicated), writes their metadata and the OUS's delivery
status, and walks its substates up to ProductsIngested.
"""

import click

from draws.actors.ingestor import PRODUCTS_WAIT, Ingestor
from draws.runtime import Context, run_main


@click.command(help=__doc__)
@click.option("-n", "--workers", default=2, show_default=True, type=click.IntRange(1, 32),
              help="OUSs ingested at once.")
@click.option("--products-wait", default=PRODUCTS_WAIT, show_default=True, type=click.FloatRange(0),
              help="Seconds to wait for products that have not reached the cache yet.")
@run_main("product-ingestor")
def main(workers, products_wait):
    ctx = Context.start("product-ingestor", require=("local_cache",))
    Ingestor(ctx, workers, products_wait).run()


if __name__ == "__main__":
    main()
