"""The cache replicator: keeps this site's cache in step (spec §4).

On ``cached.<LOC>`` it pulls a file cached at another site with rsync from
that site's cache location, expands weblogs into ``weblogs/`` and, at JAO,
archives the weblog zip in NGAS. The cache is served over HTTP by
``cache.serve``.
"""

import time

from .. import messages
from ..archive import Ngas
from ..cache import Cache, TransferError, serve, within
from ..exceptions import InvalidRequest
from ..receiver import Receiver
from ..retention import Keeper

RETRIES = 3          # after the first rsync attempt
BACKOFF = 1.0        # seconds before the first retry, doubled each time
WORKERS = 2          # files pulled at once


class Replicator:
    """CACHES: other sites' cache locations beyond the settings'; PORT, HOST: where ours is served."""

    def __init__(self, ctx, caches=None, port=8000, host="127.0.0.1", retries=RETRIES, backoff=BACKOFF):
        self.ctx = ctx
        self.port = port
        self.host = host
        self.log = ctx.log
        self.location = ctx.settings.location
        self.caches = dict(ctx.settings.caches, **{k: v for k, v in (caches or {}).items() if v})
        self.cache = Cache(ctx.settings.local_cache, site=self.location)
        self.ngas = Ngas(ctx.server) if self.location == "JAO" else None
        self.retries = retries
        self.backoff = backoff
        self.selector = messages.cached_selector(self.location)

    def handle(self, message):
        file_type, cached_at, name = messages.check_cached(message.body)
        if cached_at == self.location:
            path = self.cache.path(name)
            if not path.exists():
                raise InvalidRequest(f"{name} is announced as cached here but is not in {self.cache.root}")
        else:
            path = self.pull(cached_at, name, is_dir=file_type == "productsdir")
        if file_type == "weblog":
            if not within(self.cache.root, path):   # rsync copies a link as a link: it may lead anywhere
                raise InvalidRequest(f"{name} is a symbolic link or leaves the cache: not reading it")
            self.cache.expand_weblog(path)
            if self.ngas is not None:
                self.ngas.archive_file(path)
                self.log.info("archived %s in NGAS", name)

    def pull(self, site, name, is_dir):
        """rsync NAME from SITE's cache, retrying with backoff; TransferError at last."""
        source = self.caches.get(site)
        if not source:
            raise InvalidRequest(f"{name} is cached at {site}, whose cache location is unknown: "
                                 f"give -{site[:2].lower()}c or set DRAWS_{site}_CACHE")
        delay = self.backoff
        for attempt in range(1, self.retries + 2):
            try:
                path = self.cache.pull(source, name, is_dir)
            except TransferError as exc:
                if attempt > self.retries:
                    raise
                self.log.warning("%s (attempt %d of %d); retrying in %g s",
                                 exc, attempt, self.retries + 1, delay)
                time.sleep(delay)
                delay *= 2
                continue
            self.log.info("pulled %s from %s", name, site)
            return path

    def run(self):
        """Serve this site's cache over HTTP and pull what is announced; never returns."""
        httpd = serve(self.cache.root, self.host, self.port)
        self.log.info("serving %s at http://%s:%d/ (weblogs at /weblogs/)",
                      self.cache.root, self.host, httpd.server_port)
        self.log.info("listening on %s; other caches: %s", self.selector,
                      ", ".join(f"{site}={where}" for site, where in sorted(self.caches.items())
                                if site != self.location) or "none")
        # One cache replicator per site: the site's msgq retention is applied here.
        if self.ctx.settings.msgq_retention:
            Keeper(self.ctx.bus.db, self.ctx.settings.msgq_retention).start()
        Receiver(self.ctx.bus, self.selector, self.handle, concurrency=WORKERS,
                 name="replicated-cache").run()
