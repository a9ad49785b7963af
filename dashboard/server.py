#!/usr/bin/env python3
"""The DRAWS web dashboard: dashboard/server.py [--host 127.0.0.1] [--port 5000] [--cache-url URL]."""

import socket
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package from the project root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import click  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from dashboard.app import LOOPBACK_NAMES, create_app  # noqa: E402
from draws import config  # noqa: E402
from draws.couch import safe_url  # noqa: E402
from draws.runtime import run_main, setup_logging  # noqa: E402


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--cache-url", metavar="URL",
              help="The local cache's HTTP server, for weblog links [default: this host, port 8000].")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another name browsers reach the dashboard by (repeatable) [default: localhost, "
                   "127.0.0.1 and, with --host, that address or, for 0.0.0.0, this machine's names].")
@click.option("--login-file", type=click.File(), metavar="FILE",
              help="A file holding USER:PASSWORD that browsers must give [default: CouchDB's, "
                   "when DRAWS_COUCHDB_URL has them; else none].")
@run_main("dashboard")
def main(host, port, cache_url, allowed_hosts, login_file):
    """Show the DRAWS tables live at http://HOST:PORT/."""
    log = setup_logging("dashboard")
    settings = config.load()
    extra = {"TRUSTED_HOSTS": served_names(host) + list(allowed_hosts)}
    if login_file:
        user, colon, password = login_file.readline().rstrip("\r\n").partition(":")
        if not (user and colon and password):
            raise click.BadParameter("the file must hold USER:PASSWORD on its first line", param_hint="--login-file")
        extra["LOGIN"] = (user, password)
    app = create_app(settings.couchdb_url, cache_url=cache_url, **extra)
    try:
        httpd = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    log.info("dashboard at http://%s:%d/ reading CouchDB at %s (answers to %s%s)", host, port,
             safe_url(settings.couchdb_url), ", ".join(extra["TRUSTED_HOSTS"]),
             "; browsers log in" if app.config["LOGIN"] else "")
    httpd.serve_forever()


def served_names(host):
    """The Host names a browser may use: loopback, HOST, and for a wildcard this machine's names."""
    names = list(LOOPBACK_NAMES)
    if host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn()]
        try:
            names += socket.gethostbyname_ex(hostname)[2]
        except OSError:
            pass   # a name without an address: reachable by its name only
    else:
        names.append(host)
    return list(dict.fromkeys(names))


if __name__ == "__main__":
    main()
