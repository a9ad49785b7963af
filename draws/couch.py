"""The only code that talks HTTP to CouchDB (Apache CouchDB 3.x or PouchDB Server).

* JSON is always sent with its content type (PouchDB Server silently stores
  an empty document otherwise).
* Credentials are taken out of the URL and sent as HTTP basic auth, so no
  URL we print, log or raise ever carries them.
* While the server cannot be reached, requests wait and retry with backoff,
  saying once that they wait; typed errors for everything else.
"""

import logging
import random
import threading
import time
import json
import uuid
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from .exceptions import Conflict, CouchError, NotFound, Unauthorized, Unavailable

log = logging.getLogger("draws.couch")

DEFAULT_TIMEOUT = 30.0  # seconds; PouchDB Server can hang on some refused requests


def split_credentials(url):
    """(url without user info, (user, password) or None)."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url.rstrip("/"), None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/"), auth


def safe_url(url):
    """The URL with any credentials removed: the only form we ever show."""
    return split_credentials(url)[0]


EPOCH_ID = "_local/draws-epoch"


def doc_path(doc_id):
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return prefix + quote(doc_id[len(prefix):], safe="")
    return quote(doc_id, safe="")


class Server:
    """A CouchDB server. Thread-safe: each thread gets its own HTTP session."""

    def __init__(self, url, timeout=DEFAULT_TIMEOUT, wait=True, max_wait=None):
        self.url, self._auth = split_credentials(url)
        self.timeout = timeout
        self.wait = wait            # retry while unreachable?
        self.max_wait = max_wait    # give up after this many seconds (None: never)
        self._local = threading.local()
        self._waiting = threading.Event()  # set while we report being cut off
        self._answered = False   # it did once: "answers again" after an outage, not at start

    def __repr__(self):
        return f"Server({self.url!r})"

    @property
    def user(self):
        """The user name the URL carried, or None (never the password)."""
        return self._auth[0] if self._auth else None

    @property
    def session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.auth = self._auth
            s.headers["Accept"] = "application/json"
            # Uncompressed: PouchDB Server's gzip would hold back the lines of a
            # continuous feed, and on the usual loopback it only costs CPU.
            s.headers["Accept-Encoding"] = "identity"
            self._local.session = s
        return s

    def request(self, method, path, *, body=None, params=None, data=None,
                headers=None, timeout=None, wait=None, raw=False, stream=False):
        """Send one request; return the decoded JSON (or the response if raw or streamed)."""
        url = f"{self.url}/{path}"
        wait = self.wait if wait is None else wait
        delay, started = 0.2, time.monotonic()
        while True:
            try:
                resp = self.session.request(
                    method, url, json=body, params=params, data=data, headers=headers,
                    timeout=timeout or self.timeout, stream=stream)
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = _short_reason(exc)
                if timeout and _is_read_timeout(exc):
                    # A caller-chosen read timeout (long polls) is not an outage.
                    raise requests.ReadTimeout(str(exc)) from None
                if not wait or (self.max_wait is not None
                                and time.monotonic() - started > self.max_wait):
                    raise Unavailable(f"CouchDB at {self.url} is unreachable ({reason})") from None
                if not self._waiting.is_set():
                    self._waiting.set()
                    log.warning("waiting for CouchDB at %s (%s); if none runs there, "
                                "`make server` starts one", self.url, reason)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._waiting.is_set():
                self._waiting.clear()
                log.warning("CouchDB at %s answers%s", self.url, " again" if self._answered else "")
            self._answered = True
            if resp.status_code >= 400:
                _raise_for(resp, method, path)
            if raw or stream:
                return resp
            return resp.json() if resp.content else None

    def db(self, name):
        return Database(self, name)

    def all_dbs(self):
        return self.request("GET", "_all_dbs")

    def up(self):
        """True when the server answers (one quick try, no waiting)."""
        try:
            self.request("GET", "", wait=False, timeout=3)
            return True
        except CouchError:
            return False


def _is_read_timeout(exc):
    # requests raises a ConnectionError when the timeout strikes while the
    # body streams in (PouchDB Server sends a long poll's headers at once).
    return isinstance(exc, requests.ReadTimeout) or "read timed out" in str(exc).lower()


def _short_reason(exc):
    text = str(exc)
    for key in ("Connection refused", "timed out", "Name or service not known",
                "Connection reset", "Remote end closed"):
        if key.lower() in text.lower():
            return key.lower()
    return type(exc).__name__


# Apache CouchDB's answers to the loser of a race (two clients creating one
# index, or one database, at the same moment): "someone else did it", as 409.
RACE_LOST = ({"error": "error_saving_ddoc"}, {"error": "error", "reason": "conflict"})


def _raise_for(resp, method, path):
    try:
        info = resp.json()
        reason = f"{info.get('error', '')}: {info.get('reason', '')}".strip(": ")
    except ValueError:
        info, reason = {}, resp.text[:200]
    where = f"{method} /{path.split('?')[0]}"
    kind = {404: NotFound, 409: Conflict, 412: Conflict, 401: Unauthorized,
            403: Unauthorized}.get(resp.status_code, CouchError)
    if resp.status_code == 500 and any(
            all(info.get(k) == v for k, v in race.items()) for race in RACE_LOST):
        kind = Conflict
    raise kind(f"{where}: {resp.status_code} {reason}", resp.status_code)


class Database:
    """One CouchDB database (a DRAWS table)."""

    def __init__(self, server, name):
        self.server = server
        self.name = name
        self._q = quote(name, safe="")

    def __repr__(self):
        return f"Database({self.name!r})"

    def _req(self, method, path="", **kw):
        return self.server.request(method, f"{self._q}/{path}" if path else self._q, **kw)

    # -- the database itself
    def create(self):
        """Create the database; True if it was new."""
        try:
            self._req("PUT")
            return True
        except Conflict:
            return False

    def info(self):
        return self._req("GET")

    def exists(self):
        try:
            self.info()
            return True
        except NotFound:
            return False

    def open_to_all(self):
        """True while the database's _security names no members: anyone may use it."""
        members = (self._req("GET", "_security") or {}).get("members") or {}
        return not members.get("names") and not members.get("roles")

    def restrict_to(self, user):
        """Let only USER and server admins read or write the database (its _security)."""
        self._req("PUT", "_security", body={"admins": {"names": [], "roles": []},
                                            "members": {"names": [user], "roles": ["_admin"]}})

    def epoch(self):
        """This table's epoch: a random id its first follower gives it, so that a table
        made anew (the server lost its data) is told from the one it replaced.

        A ``_local`` document: never replicated, never in the changes feed.
        NotFound if the table does not exist; one quick try (no waiting).
        """
        for _ in range(2):
            try:
                return self._req("GET", doc_path(EPOCH_ID), wait=False)["epoch"]
            except NotFound:
                pass
            try:   # NotFound here: the table itself is gone
                self._req("PUT", doc_path(EPOCH_ID), body={"epoch": uuid.uuid4().hex}, wait=False)
            except Conflict:
                pass   # another follower gave it one at the same moment: read theirs
        return self._req("GET", doc_path(EPOCH_ID), wait=False)["epoch"]

    def index_names(self):
        """The names of the database's Mango indexes."""
        return {ix["name"] for ix in self._req("GET", "_index")["indexes"]}

    def ensure_index(self, fields, name):
        return self._req("POST", "_index", body={
            "index": {"fields": fields}, "name": name, "ddoc": f"draws-{name}", "type": "json"})

    # -- documents
    def get(self, doc_id, **params):
        return self._req("GET", doc_path(doc_id), params=params or None)

    def get_or_none(self, doc_id):
        try:
            return self.get(doc_id)
        except NotFound:
            return None

    def get_many(self, doc_ids):
        """{id: document} of those of DOC_IDS that exist, in one request (missing and
        deleted ones are left out)."""
        if not doc_ids:
            return {}
        rows = self._req("POST", "_all_docs", params={"include_docs": "true"},
                         body={"keys": list(doc_ids)})["rows"]
        return {r["id"]: r["doc"] for r in rows if r.get("doc")}

    def put(self, doc):
        """Create or update DOC (with _id, and _rev when updating); sets its new _rev."""
        res = self._req("PUT", doc_path(doc["_id"]), body=doc)
        doc["_rev"] = res["rev"]
        return doc

    def delete(self, doc_id, rev):
        return self._req("DELETE", doc_path(doc_id), params={"rev": rev})

    def bulk(self, docs):
        """POST _bulk_docs; returns the per-document results."""
        return self._req("POST", "_bulk_docs", body={"docs": docs})

    def all_docs(self, **params):
        for key in ("key", "startkey", "endkey", "start_key", "end_key"):
            if key in params:
                params[key] = json.dumps(params[key])
        return self._req("GET", "_all_docs", params=params)

    def ids(self):
        """Every document id except design documents."""
        rows = self.all_docs()["rows"]
        return [r["id"] for r in rows if not r["id"].startswith("_design/")]

    def find(self, selector, sort=None, limit=None, fields=None, skip=None):
        """Documents matching a Mango selector."""
        query = {"selector": selector, "limit": limit or 100000}
        if sort:
            query["sort"] = sort
        if fields:
            query["fields"] = fields
        if skip:
            query["skip"] = skip
        return self._req("POST", "_find", body=query)["docs"]

    def get_attachment(self, doc_id, name):
        return self._req("GET", f"{doc_path(doc_id)}/{quote(name, safe='')}", raw=True).content

    def changes(self, since=0, limit=None):
        """One batch of the changes since SINCE, with their documents: {"results": [...], "last_seq": ...}.

        Read through the table's sequence index: the cost is what changed, not the table.
        """
        params = {"since": since, "include_docs": "true", **({"limit": limit} if limit else {})}
        return self._req("GET", "_changes", params=params)

    def last_seq(self):
        """The update sequence of the newest change (opaque on CouchDB, a number on PouchDB).

        Asked of _changes: PouchDB Server's database info, which also has it,
        measures the database's files on disk each time.
        """
        res = self._req("GET", "_changes", params={"descending": "true", "limit": 1})
        return res["last_seq"]

    def follow(self, since, include_docs=True, heartbeat=10.0):
        """The continuous _changes feed from SINCE: yields each change as it happens
        (and None for each keep-alive line).

        One open response carries every change, so following a table costs
        the server no request per change and nothing while it is idle. The
        server writes an empty line every HEARTBEAT s; a silence three times
        as long is taken for a lost connection (requests.ReadTimeout).
        Raises CouchError or requests' errors when the feed breaks; the
        caller resumes from the last ``seq`` it saw. Call ``close()`` on the
        generator to hang up.
        """
        params = {"feed": "continuous", "since": since, "heartbeat": int(heartbeat * 1000),
                  "include_docs": "true" if include_docs else "false"}
        resp = self._req("GET", "_changes", params=params, stream=True, wait=False,
                         timeout=(10, 3 * heartbeat))
        try:
            pending = b""
            for chunk in resp.iter_content(chunk_size=None):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield json.loads(line) if line.strip() else None
        finally:
            resp.close()

    def update(self, doc_id, change, create=None, attempts=20, recent=None):
        """Read-modify-write with retry on conflict.

        CHANGE(doc) edits the document in place (returning False leaves it
        unwritten); CREATE() makes the first version when it does not exist.
        With RECENT (a :class:`draws.recent.Recent`), a document this process wrote last
        is changed without reading it first; if someone else wrote it since,
        CouchDB refuses the stale revision and it is read as usual.
        Returns the document as written (or as found when unchanged).
        """
        lost_race = False
        for attempt in range(attempts):
            if lost_race:   # let the winner's neighbours pass too (no livelock)
                time.sleep(random.uniform(0, 0.005 * attempt))
            doc = recent.take(doc_id) if recent is not None else None
            remembered = doc is not None
            if not remembered:
                try:
                    doc = self.get(doc_id)
                except NotFound:
                    if create is None:
                        raise
                    doc = create()
                    doc["_id"] = doc_id
            try:
                unchanged = change(doc) is False
            except Exception:
                if remembered:
                    continue   # judged on a copy that may be stale: look at the real one
                raise
            if unchanged:
                if remembered:
                    continue
                return doc
            try:
                self.put(doc)
            except Conflict:
                lost_race = not remembered
                continue
            if recent is not None:
                recent.keep(doc)
            return doc
        raise Conflict(f"{self.name}/{doc_id}: still changing after {attempts} attempts", 409)
