"""CouchDB replication between JAO and its ARCs (spec §6).

Each ARC pulls the five Oracle/NGAS tables from JAO; ``msgq`` is pulled both
ways (the ARC pulls JAO's, JAO pulls each ARC's). Replications are
persistent ``_replicator`` documents on the pulling server, so they survive
restarts of either side and resume by themselves after a cut.

On ``msgq`` conflicts: a message is written by its sender (creation) and
afterwards only by receivers at its destination site (claim, lease renewal,
done or failed), so the two sides never edit one revision concurrently and
no conflict arises in normal operation. Were one to arise (someone editing
by hand on both sides), CouchDB keeps a deterministic winner on both sides
and receivers act on the winner only: a message is never handled twice
because only the destination site's receivers ever claim it.
"""

import netrc
import re
import stat
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import tables
from .exceptions import ConfigError, NotFound, Unavailable
from .timestamps import timestamp
from .couch import Server, safe_url, split_credentials

PULLED_BY_ARCS = (tables.DELIVERY, tables.NGAS, tables.REPORTS, tables.METADATA, tables.STATUS)
REPLICATOR = "_replicator"


def _label(url):
    return re.sub(r"[^A-Za-z0-9]+", "_", safe_url(url).split("://", 1)[-1]).strip("_")


# -- credentials: from the environment or a file, never from a command line

CREDENTIALS_HELP = (
    "give the URL without them: a server's credentials are taken from DRAWS_COUCHDB_URL "
    "when it names the same server, else from the credentials file (~/.netrc, or the file "
    "named by DRAWS_CREDENTIALS_FILE; readable by you only) with a line "
    "'machine HOST login USER password PASSWORD' (see MULTIHOST.md)")


def _server_key(url):
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"https": 443}.get(parts.scheme, 80)


def _from_file(path, host):
    """(user, password) for HOST in the netrc-style file PATH, or None."""
    explicit = path is not None
    path = Path(path) if explicit else Path.home() / ".netrc"
    if not path.exists():
        if explicit:
            raise ConfigError(f"DRAWS_CREDENTIALS_FILE names {path}, which does not exist")
        return None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds passwords but others may read it: chmod 600 {path}")
    try:
        found = netrc.netrc(str(path)).authenticators(host)
    except netrc.NetrcParseError as exc:
        raise ConfigError(f"{path} is not a valid credentials file: {exc.msg} (line {exc.lineno})") from None
    return (found[0], found[2]) if found else None


def authenticated(url, settings):
    """URL with its server's credentials from the environment or the credentials file."""
    env_url, env_auth = split_credentials(settings.couchdb_url)
    auth = env_auth if env_auth and _server_key(env_url) == _server_key(url) else \
        _from_file(settings.credentials_file, urlsplit(url).hostname)
    if not auth or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(auth[0], safe='')}:{quote(auth[1], safe='')}@{rest}"


def plan(jao_url, arc_urls):
    """[(puller URL, replication id, source URL, target URL)] for JAO and ARCS."""
    jobs = []
    for arc in arc_urls:
        for table in PULLED_BY_ARCS + (tables.MSGQ,):
            jobs.append((arc, f"draws-{table}-from-{_label(jao_url)}",
                         f"{jao_url.rstrip('/')}/{table}", f"{arc.rstrip('/')}/{table}"))
        jobs.append((jao_url, f"draws-{tables.MSGQ}-from-{_label(arc)}",
                     f"{arc.rstrip('/')}/{tables.MSGQ}", f"{jao_url.rstrip('/')}/{tables.MSGQ}"))
    return jobs


def _replicator(url):
    server = Server(url, max_wait=30)
    db = server.db(REPLICATOR)
    db.create()
    return db


def setup(jao_url, arc_urls):
    """Create the replications that are missing; returns (id, 'created'|'exists'|'updated')."""
    for url in [jao_url] + list(arc_urls):
        tables.ensure(Server(url, max_wait=30))
    done = []
    for puller, rid, source, target in plan(jao_url, arc_urls):
        db = _replicator(puller)
        wanted = {"source": source, "target": target, "continuous": True}
        existing = db.get_or_none(rid)
        if existing and all(existing.get(k) == v for k, v in wanted.items()):
            done.append((puller, rid, "exists"))
            continue
        if existing:  # a replication document cannot be edited in place: replace it
            db.delete(rid, existing["_rev"])
        # A marker unique to this setup: PouchDB Server's replicator ignores a
        # document identical to one deleted before (it thinks it runs already).
        db.put(dict(wanted, _id=rid, draws_setup=f"{timestamp()}-{uuid.uuid4().hex[:8]}"))
        done.append((puller, rid, "updated" if existing else "created"))
    return done


def teardown(jao_url, arc_urls):
    removed = []
    for puller, rid, _, _ in plan(jao_url, arc_urls):
        db = _replicator(puller)
        doc = db.get_or_none(rid)
        if doc:
            db.delete(rid, doc["_rev"])
            removed.append((puller, rid))
    return removed


def status(jao_url, arc_urls):
    """One dict per replication: where, what, state and how far behind it is."""
    rows = []
    for puller, rid, source, target in plan(jao_url, arc_urls):
        doc = _replicator(puller).get_or_none(rid)
        state = (doc or {}).get("_replication_state") or ("missing" if doc is None else "pending")
        scheduler = _scheduler_state(puller, rid)
        if scheduler:
            state = scheduler
        rows.append({"at": safe_url(puller), "id": rid, "source": safe_url(source),
                     "state": state, "behind": _behind(source, target)})
    return rows


def _scheduler_state(url, rid):
    """Apache CouchDB's richer state (running, crashing, ...); None on PouchDB Server."""
    try:
        info = Server(url, max_wait=5).request("GET", f"_scheduler/docs/{REPLICATOR}/{rid}")
        return info.get("state")
    except NotFound:  # PouchDB Server has no scheduler; an old CouchDB neither
        return None


def _behind(source, target):
    """Documents the target still lacks (by count), or None if a side is unreachable.

    A side that refuses our credentials is an error, not a blank: it says which.
    """
    def count(url):
        base, _, db = url.rstrip("/").rpartition("/")
        return Server(base, wait=False).db(db).info()["doc_count"]
    try:
        return max(0, count(source) - count(target))
    except (Unavailable, NotFound):
        return None
