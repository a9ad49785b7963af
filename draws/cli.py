"""Operator tools: `python -m draws COMMAND` (see --help)."""

import functools
import json

import click

from . import config, dbserver, rpc
from .couch import safe_url
from .exceptions import InvalidRequest
from .runtime import Context, run_main


@click.group()
def cli():
    """DRAWS operator tools."""


def _value(text):
    """key=value values: JSON when they parse as JSON (numbers, null, lists), else strings."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@cli.command()
@click.argument("selector")
@click.argument("fields", nargs=-1)
@run_main("send")
def send(selector, fields):
    """Send a message whose body is the FIELDS given as key=value.

    Example: python -m draws send ingest.JAO ousUID=uid://X1/X1/Xb0 timestamp=2018-07-24T09:49:20.902
    """
    body = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"{field!r} is not key=value")
        body[key] = _value(value)
    ctx = Context.start("send", log=False)
    for mid in ctx.bus.send(selector, body):
        click.echo(f"sent {mid} to {selector}")


@cli.command(name="rpc")
@click.argument("selector")
@click.argument("request")
@click.option("-t", "--timeout", default=30.0, show_default=True, help="Seconds to wait for the reply.")
@run_main("rpc")
def rpc_command(selector, request, timeout):
    """Send the JSON REQUEST to the executor on SELECTOR and print its reply.

    Example: python -m draws rpc xtss '{"operation": "get-ouss-by-state-substate",
    "state": "ReadyForProcessing", "substate": "^Pipeline"}'
    """
    try:
        body = json.loads(request)
    except ValueError as exc:
        raise InvalidRequest(f"REQUEST is not JSON: {exc}") from None
    ctx = Context.start("rpc", log=False)
    reply = rpc.call(ctx.bus, selector, body, timeout=timeout)
    click.echo(json.dumps(reply, indent=2))
    if rpc.is_error(reply):
        return 1


@cli.group()
def server():
    """This host's CouchDB: PouchDB Server, or Apache CouchDB from DRAWS_COUCHDB_RELEASE."""


@server.command()
@run_main("server")
def start():
    """Start it on DRAWS_COUCHDB_URL's host and port, unless a CouchDB answers there."""
    settings = config.load()
    return dbserver.start(settings.couchdb_url, settings.var, settings.couchdb_release)


@server.command()
@run_main("server")
def stop():
    """Stop the server that `start` started (and nothing else)."""
    return dbserver.stop(config.load().var)



def _duration(text):
    from .config import duration
    from .exceptions import ConfigError
    try:
        return duration(text)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.option("--older-than", default="7d", show_default=True,
              help="Age of the handled messages to delete: 90s, 30m, 12h, 7d ...")
@run_main("purge")
def purge(older_than):
    """Delete handled messages older than the given age from msgq.

    Unconsumed, in-progress and failed messages are kept whatever their age.
    """
    from .retention import purge as purge_messages
    from . import tables
    seconds = _duration(older_than)
    ctx = Context.start("purge")
    count = purge_messages(ctx.server.db(tables.MSGQ), seconds)
    ctx.log.info("deleted %d handled message(s) older than %s", count, older_than)


@cli.command()
@click.option("--ouss", default=1000, show_default=True, help="Delivered OUSs to write.")
@click.option("--seed", default=1, show_default=True, help="The same seed writes the same history.")
@click.option("--days", default=1000.0, show_default=True, help="Over how many days they were delivered.")
@click.option("--keep-messages", default=None,
              help="Write the messages of this last stretch only, as msgq's retention leaves them "
                   "(90s, 12h, 7d ...; 'all' for every one). Default: DRAWS_MSGQ_RETENTION (7d).")
@click.option("--force", is_flag=True, help="Write even into tables that hold documents.")
@run_main("history")
def history(ouss, seed, days, keep_messages, force):
    """Fill the tables with OUSS delivered OUSs, as their life cycles would have left them."""
    import time
    from .history import generate
    ctx = Context.start("history")
    keep = ctx.settings.msgq_retention if keep_messages is None else \
        0 if keep_messages == "all" else _duration(keep_messages)
    started = time.monotonic()

    def progress(done):
        if done % 5000 == 0 or done == ouss:
            ctx.log.info("%d of %d OUSs (%.0f s)", done, ouss, time.monotonic() - started)
    written = generate(ctx.server, ouss, seed=seed, days=days, keep_messages=keep or None, force=force,
                       progress=progress)
    ctx.log.info("wrote %s in %.0f s", ", ".join(f"{n} {t}" for t, n in written.items()),
                 time.monotonic() - started)


@cli.group()
def replication():
    """CouchDB replication between JAO and its ARCs (see MULTIHOST.md)."""


def _without_credentials(ctx, param, value):
    """Refuse a URL carrying credentials: on a command line everyone sees them."""
    from .couch import split_credentials
    from .replication import CREDENTIALS_HELP
    for url in value if isinstance(value, tuple) else (value,):
        if url and split_credentials(url)[1]:
            raise click.BadParameter(
                f"{safe_url(url)}: refused, it carries credentials, which on a command line every "
                f"user of this host sees (ps) and the shell's history keeps; {CREDENTIALS_HELP}.")
    return value


def _sites(fn):
    """--jao and --arc options; the command gets them with their credentials added."""
    @functools.wraps(fn)
    def with_credentials(jao, arcs):
        from .replication import authenticated
        settings = config.load()
        return fn(authenticated(jao, settings), [authenticated(arc, settings) for arc in arcs])
    with_credentials = click.option(
        "--arc", "arcs", multiple=True, required=True, metavar="URL", callback=_without_credentials,
        help="An ARC's CouchDB, as JAO's server reaches it (repeat for several ARCs).")(with_credentials)
    return click.option("--jao", required=True, metavar="URL", callback=_without_credentials,
                        help="JAO's CouchDB, as the ARCs' servers reach it.")(with_credentials)


@replication.command()
@run_main("replication")
@_sites
def setup(jao, arcs):
    """Create the persistent pull replications (idempotent).

    Credentials come from DRAWS_COUCHDB_URL or the credentials file, never the command line.
    """
    from . import replication as rep
    for puller, rid, what in rep.setup(jao, arcs):
        click.echo(f"{what:8} {rid:45} at {safe_url(puller)}")


@replication.command()
@run_main("replication")
@_sites
def status(jao, arcs):
    """Each replication's state and how many documents its target still lacks."""
    from . import replication as rep
    click.echo(f"{'at':28} {'replication':45} {'state':12} behind")
    for row in rep.status(jao, arcs):
        behind = "?" if row["behind"] is None else row["behind"]
        click.echo(f"{row['at']:28} {row['id']:45} {row['state']:12} {behind}")


@replication.command()
@run_main("replication")
@_sites
def teardown(jao, arcs):
    """Remove the replications that `setup` created."""
    from . import replication as rep
    for puller, rid in rep.teardown(jao, arcs):
        click.echo(f"removed  {rid:45} at {safe_url(puller)}")
