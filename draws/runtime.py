"""What every actor does at start: logging, settings, CouchDB, tables, bus.

Scripts stay thin: they parse their arguments and call ``Context.start``,
wrapped in ``run_main`` so that a missing setting or an unreachable server is
one clear sentence and an exit status, not a traceback.
"""

import functools
import logging
import sys

from . import config
from .exceptions import DrawsError

LOG_FORMAT = "%(asctime)s.%(msecs)03d %(actor)-18s %(levelname)-7s %(message)s"


class _ActorFilter(logging.Filter):
    def __init__(self, actor):
        super().__init__()
        self.actor = actor

    def filter(self, record):
        record.actor = self.actor
        return True


def setup_logging(actor, level=None):
    """Log one line per record, naming ACTOR, to standard error, from LEVEL up
    (default: the settings' log_level, DRAWS_LOG_LEVEL)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
    handler.addFilter(_ActorFilter(actor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or "INFO")
    if level is None:   # after the handler: the settings may have a warning to log
        root.setLevel(config.load().log_level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(f"draws.{actor}")


class Context:
    """An actor's settings, CouchDB server, bus and XTSS client."""

    def __init__(self, actor, settings, server):
        # Imported here, not above: the Pipeline, a process of its own per
        # OUS, logs through this module and starts faster without HTTP.
        from .bus import Bus
        from .xtss import XtssClient
        self.actor = actor
        self.settings = settings
        self.server = server
        self.bus = Bus(server, actor=actor)
        self.xtss = XtssClient(self.bus, timeout=settings.rpc_timeout)
        self.log = logging.getLogger(f"draws.{actor}")

    @classmethod
    def start(cls, actor, require=(), settings=None, log=True, ensure_tables=True):
        if log:
            setup_logging(actor)
        settings = settings or config.load()
        settings.require(*require)
        from . import tables
        from .couch import Server
        server = Server(settings.couchdb_url)
        if ensure_tables:
            tables.ensure(server)
        return cls(actor, settings, server)


def run_main(actor):
    """Decorator for a script's main(): clean exits on errors and Ctrl-C.

    The one place that ends a process: a DrawsError is one line on standard
    error and exit status 1; an int main() returns is the exit status.
    """
    def wrap(fn):
        @functools.wraps(fn)
        def main(*args, **kwargs):
            try:
                status = fn(*args, **kwargs)
                if isinstance(status, int) and status:
                    sys.exit(status)
                return status
            except KeyboardInterrupt:
                print(f"\n{actor}: stopped", file=sys.stderr)
                sys.exit(0)
            except DrawsError as exc:
                print(f"{actor}: error: {exc}", file=sys.stderr)
                sys.exit(1)
        return main
    return wrap
