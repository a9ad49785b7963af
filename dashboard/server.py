#!/usr/bin/env python3
"""The DRAWS web dashboard: dashboard/server.py [--host 127.0.0.1] [--port 5000] [--cache-url URL]."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package from the project root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import click  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from dashboard.app import create_app  # noqa: E402
from draws import config  # noqa: E402
from draws.couch import safe_url  # noqa: E402
from draws.runtime import run_main, setup_logging  # noqa: E402


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--cache-url", metavar="URL",
              help="The local cache's HTTP server, for weblog links [default: this host, port 8000].")
@run_main("dashboard")
def main(host, port, cache_url):
    """Show the DRAWS tables live at http://HOST:PORT/."""
    log = setup_logging("dashboard")
    settings = config.load()
    app = create_app(settings.couchdb_url, cache_url=cache_url)
    try:
        httpd = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    log.info("dashboard at http://%s:%d/ reading CouchDB at %s", host, port, safe_url(settings.couchdb_url))
    httpd.serve_forever()


if __name__ == "__main__":
    main()
