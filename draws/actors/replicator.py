"""The cache replicator: keeps this site's cache in step (spec §4).

On ``cached.<LOC>`` it pulls a file cached at another site with rsync from
that site's cache location, expands weblogs into ``weblogs/`` and, at JAO,
archives the weblog zip in NGAS. The cache is served over HTTP by
``cache.serve``.
"""

import time

from ..archive import Ngas
from ..cache import Cache, TransferError
from ..config import LOCATIONS
from ..exceptions import InvalidRequest
from ..ous import show
from ..products import check_name

FILE_TYPES = ("productsdir", "weblog")
RETRIES = 3          # after the first rsync attempt
BACKOFF = 1.0        # seconds before the first retry, doubled each time


def announcement(body):
    """(fileType, cachedAt, name) of a well-formed ``cached.*`` body; InvalidRequest otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"a cached.* message is a JSON object, not {type(body).__name__}")
    file_type, cached_at, name = body.get("fileType"), body.get("cachedAt"), body.get("name")
    if file_type not in FILE_TYPES:
        raise InvalidRequest(f"fileType must be one of {', '.join(FILE_TYPES)}, not {show(file_type)}")
    if cached_at not in LOCATIONS:
        raise InvalidRequest(f"cachedAt must be one of {', '.join(LOCATIONS)}, not {show(cached_at)}")
    check_name(name)
    if file_type == "weblog" and not name.endswith(".zip"):
        raise InvalidRequest(f"a weblog is a .zip file, not {name!r}")
    return file_type, cached_at, name


class Replicator:
    def __init__(self, ctx, caches=None, retries=RETRIES, backoff=BACKOFF):
        self.ctx = ctx
        self.log = ctx.log
        self.location = ctx.settings.location
        self.caches = dict(ctx.settings.caches, **{k: v for k, v in (caches or {}).items() if v})
        self.cache = Cache(ctx.settings.local_cache)
        self.ngas = Ngas(ctx.server) if self.location == "JAO" else None
        self.retries = retries
        self.backoff = backoff
        self.selector = f"cached.{self.location}"

    def handle(self, message):
        file_type, cached_at, name = announcement(message.body)
        if cached_at == self.location:
            path = self.cache.path(name)
            if not path.exists():
                raise InvalidRequest(f"{name} is announced as cached here but is not in {self.cache.root}")
        else:
            path = self.pull(cached_at, name, is_dir=file_type == "productsdir")
        if file_type == "weblog":
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

    def receiver(self, concurrency=2):
        return self.ctx.bus.receiver(self.selector, self.handle, concurrency=concurrency,
                                     name="replicated-cache")
