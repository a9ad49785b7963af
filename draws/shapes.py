"""The shape of every document of the six tables (contract §2), checked where it is read.

Every table is replicated between sites, so any document may come from a
peer with a bug, or from someone who should not write at all. A reader asks
:func:`check` before it acts on a document: one that does not have its
table's shape is *refused*, never acted on, and said in the reader's log
once. :class:`Refusals` keeps the list of a table's refused documents, for
a person to see (the dashboard's "refused documents").

The original mockup's forms (contract §9) are shapes too: ids with ``_`` or
``:``, ``substate: null``, NGAS bytes in ``encodedContents``, a report's
``source`` that is a path.

Why at reading and not in ``validate_doc_update`` design documents: the
rules then live in one place, in one language; a replicated table may come
from a server that lacks them; and a document refused at writing leaves no
trace for a person to see, where a stored one is listed.
"""

import base64
import binascii
import logging
import re
import threading
import time

from . import tables
from .config import LOCATIONS
from .exceptions import Conflict, InvalidRequest, NotFound
from .ous import EXECUTIVE_FLAG, STATES, SUBSTATE_RE, check_progid, check_uid, encode_uid, show
from .products import check_name, check_timestamp, product_names
from .timestamps import timestamp

log = logging.getLogger("draws.shapes")

SELECTOR_RE = re.compile(r"^[A-Za-z0-9_.*:-]{1,200}$")
CHECKSUM_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_TEXT = 4096   # a free-text field (a report's source, a timestamp) longer than this is refused
MSG_STATUSES = ("claimed", "deferred", "done", "failed")
REFUSED = "malformed message: "   # the start of the error a receiver writes on a message it refuses


class Malformed(Exception):
    """Why a document does not have its table's shape (one short sentence)."""


def _need(ok, why):
    if not ok:
        raise Malformed(why)


def _field(doc, name, check, why):
    _need(name in doc, f"it has no {name}")
    _need(check(doc[name]), f"{name} {show(doc[name])} is not {why}")
    return doc[name]


def _text(value):
    return isinstance(value, str) and len(value) <= MAX_TEXT


def _passes(domain_check):
    """A predicate from one of the domain's checks (which raise InvalidRequest): one rule, one place."""
    def passes(value):
        try:
            domain_check(value)
            return True
        except InvalidRequest:
            return False
    return passes


is_uid = _passes(check_uid)
is_name = _passes(check_name)   # a plain file name: no separator, no '..', no leading '-'
_is_progid = _passes(check_progid)
_is_run = _passes(check_timestamp)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _decodes(text):
    try:
        base64.b64decode(text, validate=True)
        return True
    except (TypeError, ValueError, binascii.Error):
        return False


def _same_id(doc_id, expected):
    """Readers accept ids with ':' kept or replaced by '_' (contract §2)."""
    return isinstance(doc_id, str) and doc_id.replace(":", "_") == expected.replace(":", "_")


# -- one check per table: each raises Malformed with the reason

def _ous(doc):
    uid = _field(doc, "entityId", is_uid, "an OUS UID")
    _need(_same_id(doc["_id"], encode_uid(uid)),
          f"its _id {show(doc['_id'])} is not its entityId's ({encode_uid(uid)})")
    _field(doc, "progID", _is_progid, "a program id")
    _field(doc, "state", lambda v: v in STATES, "a state")
    substate = doc.get("substate")
    _need(substate is None or substate == "" or (isinstance(substate, str) and SUBSTATE_RE.match(substate)),
          f"substate {show(substate)} is not null, \"\" or a recipe or ingestion step")
    flags = doc.get("flags", {})
    _need(isinstance(flags, dict), f"flags {show(flags)} is not an object")
    executive = flags.get(EXECUTIVE_FLAG)
    _need(executive is None or executive in LOCATIONS,
          f"flag {EXECUTIVE_FLAG} {show(executive)} is not a site ({', '.join(LOCATIONS)})")
    _need(_text(doc.get("timestamp", "")), f"timestamp {show(doc.get('timestamp'))} is not a time")
    history = doc.get("history", [])
    _need(isinstance(history, list) and all(isinstance(h, dict) for h in history),
          "history is not a list of objects")
    # What guarded transitions keep (issue 13): who owns the OUS now, and the messages of its step.
    for name, kind in (("assignment", dict), ("owner", dict), ("outbox", dict), ("step", str), ("problem", str)):
        _need(doc.get(name) is None or isinstance(doc[name], kind),
              f"{name} {show(doc.get(name))} is not {'an object' if kind is dict else 'a string'}")
    sent = (doc.get("outbox") or {}).get("messages", [])
    _need(isinstance(sent, list) and all(reason(tables.MSGQ, m) is None for m in sent),
          "outbox messages is not a list of messages")


def _msgq(doc):
    if doc["_id"].endswith(".*") and "selector" not in doc:   # a group
        members = doc.get("members")
        _need(isinstance(members, list) and all(isinstance(m, str) and SELECTOR_RE.match(m) for m in members),
              f"members {show(members)} is not a list of selectors")
        return
    _field(doc, "selector", lambda v: isinstance(v, str) and SELECTOR_RE.match(v), "a selector")
    _field(doc, "consumed", lambda v: isinstance(v, bool), "true or false")
    _need(_text(doc.get("creationTimestamp", "")),
          f"creationTimestamp {show(doc.get('creationTimestamp'))} is not a time")
    msgback = doc.get("msgbackID")
    _need(msgback is None or (isinstance(msgback, str) and SELECTOR_RE.match(msgback)),
          f"msgbackID {show(msgback)} is not a selector")
    if "attempts" in doc:
        _field(doc, "attempts", _is_count, "a count (a non-negative integer)")
    status = doc.get("status")
    _need(status is None or status in MSG_STATUSES, f"status {show(status)} is not one of {', '.join(MSG_STATUSES)}")
    if status == "claimed":
        _field(doc, "leaseExpires", _text, "a time")
    if status == "deferred":   # handed back by a handler (receiver.Defer): taken again after retryAt
        _field(doc, "retryAt", _text, "a time")
        _field(doc, "deferrals", _is_count, "a count (a non-negative integer)")


def _report(doc):
    uid = _field(doc, "ousUID", is_uid, "an OUS UID")
    run = _field(doc, "timestamp", _is_run, "a run's timestamp")
    _need(_same_id(doc["_id"], f"{run}.{encode_uid(uid)}"),
          f"its _id {show(doc['_id'])} is not its run's ({run}.{encode_uid(uid)})")
    _field(doc, "encodedReport", lambda v: isinstance(v, str) and _decodes(v), "base64")
    _field(doc, "productsDir", is_name, "a plain directory name")
    _field(doc, "source", _text, "a site")   # the original puts its cache's path there (§9)


def _metadata(doc):
    _need(is_name(doc["_id"]), f"its _id {show(doc['_id'])} is not a plain file name")
    _field(doc, "progID", _is_progid, "a program id")
    uid = _field(doc, "ousUID", is_uid, "an OUS UID")
    run = _field(doc, "timestamp", _is_run, "a run's timestamp")
    _need(any(_same_id(doc["_id"], name) for name in product_names(uid, run)),
          f"its _id {show(doc['_id'])} is not a product of {uid}'s run {run}")


def _delivery(doc):
    uid = _field(doc, "ousUID", is_uid, "an OUS UID")
    _need(_same_id(doc["_id"], encode_uid(uid)),
          f"its _id {show(doc['_id'])} is not its ousUID's ({encode_uid(uid)})")
    _field(doc, "progID", _is_progid, "a program id")
    _field(doc, "dataProducts", lambda v: isinstance(v, list) and all(map(is_name, v)),
           "a list of plain file names")
    _field(doc, "complete", lambda v: isinstance(v, bool), "true or false")


def _ngas(doc):
    _need(is_name(doc["_id"]), f"its _id {show(doc['_id'])} is not a plain file name")
    if "encodedContents" in doc:   # the original's form (contract §9)
        _field(doc, "encodedContents", lambda v: isinstance(v, str) and _decodes(v), "base64")
        return
    _field(doc, "size", _is_count, "a size in bytes")
    _field(doc, "checksum", lambda v: isinstance(v, str) and CHECKSUM_RE.match(v), "sha256:<64 hex digits>")
    attachments = doc.get("_attachments")
    _need(isinstance(attachments, dict) and attachments, "it holds no bytes (no attachment, no encodedContents)")


CHECKS = {tables.STATUS: _ous, tables.MSGQ: _msgq, tables.REPORTS: _report,
          tables.METADATA: _metadata, tables.DELIVERY: _delivery, tables.NGAS: _ngas}


def reason(table, doc):
    """Why DOC, read from TABLE, is malformed; None when it has its table's shape."""
    if not isinstance(doc, dict) or not isinstance(doc.get("_id"), str):
        return "it is not a document with an _id"
    try:
        CHECKS[table](doc)
    except Malformed as exc:
        return str(exc)
    return None


def is_data(doc):
    """Not a design document, not a deletion: a document the tables' shapes are about."""
    return not doc.get("_deleted") and not str(doc.get("_id", "")).startswith("_design/")


_told = set()   # (table, id, reason) this process has logged: each once, however often read
_told_lock = threading.Lock()
TOLD_MAX = 10000   # then forgotten, so a flood of refusals costs no more memory than this


def check(table, doc):
    """Why DOC, read from TABLE, is refused (logged once per document); None if well formed."""
    why = reason(table, doc)
    if why is not None:
        doc_id = doc.get("_id") if isinstance(doc, dict) else None
        with _told_lock:
            first = (table, doc_id, why) not in _told
            if first:
                if len(_told) >= TOLD_MAX:
                    _told.clear()
                _told.add((table, doc_id, why))
        if first:
            log.warning("refused %s document %s: %s", table, show(doc_id), why)
    return why


def well_formed(table, docs):
    """The documents of DOCS (read from TABLE) that have its shape; the others are refused."""
    return [d for d in docs if check(table, d) is None]


def refusal(table, doc):
    """Why DOC, read from TABLE, is listed as refused; None when it is not.

    In msgq that is also a message a receiver refused (marked failed with the
    reason); a message handled and done is nobody's concern any more.
    """
    if not isinstance(doc, dict) or not is_data(doc):
        return None
    if table == tables.MSGQ and doc.get("consumed") is True and doc.get("status") != "failed":
        return None
    why = reason(table, doc)
    if why is None and table == tables.MSGQ and str(doc.get("error", "")).startswith(REFUSED):
        why = doc["error"][len(REFUSED):]
    return why


class Refusals:
    """The refused documents of one table, kept in a ``_local`` document of it (never replicated:
    each server lists its own) and brought up to date from the table's changes feed.

    So a look reads what changed since the last one, never the table whole:
    the first look at a long history reads it once, in batches, each saved
    as it is read (a look cut short goes on from there next time). At most
    KEPT are listed, the newest found last; beyond, the list says it is capped.
    """

    LIST_ID = "_local/draws-refused"
    KEPT = 5000
    BATCH = 500
    REASON_CAP = 300   # characters of one reason kept

    def __init__(self, server, table):
        self.db = server.db(table)
        self.table = table

    def read(self):
        """{"since": the last change read, "refused": [[id, reason, when found], ...] oldest first, "capped": bool}."""
        try:
            kept = self.db.get(self.LIST_ID)
        except NotFound:
            kept = {}
        return {"_id": self.LIST_ID, "since": 0, "refused": [], "capped": False} | kept

    def catch_up(self, deadline=None):
        """Read the changes since the list's, saving it after each batch; (the list as read,
        True once it is up to date or False when the monotonic DEADLINE came first)."""
        kept = self.read()
        while True:
            answer = self.db.changes(kept["since"], limit=self.BATCH)
            found = {doc_id: rest for doc_id, *rest in kept["refused"]}
            for change in answer["results"]:
                found.pop(change["id"], None)   # refused again: now the newest found
                why = None if change.get("deleted") else refusal(self.table, change.get("doc"))
                if why is not None:
                    found[change["id"]] = [why[:self.REASON_CAP], timestamp()]
            if answer["results"]:
                kept.update(since=answer["last_seq"], refused=[[i, *rest] for i, rest in found.items()][-self.KEPT:],
                            capped=kept["capped"] or len(found) > self.KEPT)
                try:
                    self.db.put(kept)
                except Conflict:   # another reader saved it meanwhile: go on from theirs
                    kept = self.read()
            if len(answer["results"]) < self.BATCH:
                return kept, True
            if deadline is not None and time.monotonic() > deadline:
                return kept, False


def refused(server, names=tables.ALL):
    """Every refused document of the tables NAMES on SERVER, newest found first: dicts with table, id, reason."""
    found = []
    for table in names:
        kept, _ = Refusals(server, table).catch_up()
        found += [{"table": table, "id": i, "reason": why} for i, why, _ in reversed(kept["refused"])]
    return found


def counts(refusals):
    """{table: number of refused documents} of a :func:`refused` list."""
    totals = {}
    for r in refusals:
        totals[r["table"]] = totals.get(r["table"], 0) + 1
    return totals

