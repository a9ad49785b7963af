"""What the dashboard shows, read through draws and shaped as plain data.

The same dictionaries feed the Jinja templates and the JSON API, so scripts
read exactly what people see. Big tables are capped (newest first) with their
full counts; each query is cached until the changes feed reports a
change in the table they read, so N browsers cost one query per change.
"""

import collections
import datetime
import heapq
import itertools
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import xml.etree.ElementTree as ET
from urllib.parse import quote

from draws import products, shapes, tables
from draws.archive import Delivery, Metadata, Ngas, Reports
from draws.exceptions import CouchError
from draws.ids import doc_id
from draws.timestamps import parse_timestamp
from draws.ous import EXECUTIVE_FLAG, STATES, encode_uid

log = logging.getLogger("draws.dashboard")

COLUMN_CAP = 8       # OUSs listed per state column on the overview
TABLE_CAP = 10       # newest rows listed per table on the overview
BUS_CAP = 100        # rows listed per list on the bus page
PAGE_SIZE = 50       # OUSs per page on a state page
REFUSED_PATIENCE = 5.0   # seconds a look at the refused documents reads changes at most
SCAN_CAP = 5000      # unconsumed/failed messages read at most (counts beyond show as "5000+")
# Any table may hold a document from a peer with a bug: a 1 MB field is shown
# cut short, and an OUS naming thousands of products gets the first few.
FIELD_CAP = 300      # characters of one field
XML_CAP = 50_000     # characters of a report's XML
LIST_CAP = 500       # items of one list
HISTORY_CAP = 100    # newest history entries shown for one OUS
PRODUCTS_CAP = 100   # product names looked up for one OUS (a real one has six)

DONE = "Delivered"   # the one state that grows with the history
# Every live state sorts after Delivered, from DeliveryInProgress on (in
# CouchDB's collation too): one range of the state index that starts there
# reads them all and none of the history ({"$gt": "Delivered"} would make
# PouchDB read every Delivered OUS to skip it).
FIRST_LIVE_STATE = min(s for s in STATES if s != DONE)   # DeliveryInProgress
OUS_FIELDS = ["_id", "entityId", "progID", "state", "substate", "flags", "timestamp"]
MESSAGE_FIELDS = ["_id", "selector", "creationTimestamp", "consumed", "status", "error",
                  "consumedBy", "handledAt", "msgbackID"]
REPLY_SELECTOR = re.compile(r"[0-9a-f]{32}")   # an RPC reply goes to its request's msgbackID
QUERY_THREADS = 16   # enough for the overview's and the bus page's queries at once


# The overview's tables: (key, table, time field, fields shown).
TABLES = (
    ("reports", tables.REPORTS, "timestamp", ["_id", "ousUID", "timestamp", "source"]),
    ("deliveries", tables.DELIVERY, "timestamp", ["_id", "progID", "ousUID", "timestamp", "complete",
                                                  "dataProducts"]),
    ("ngas", tables.NGAS, "writeTimestamp", ["_id", "writeTimestamp", "size", "checksum"]),
    ("metadata", tables.METADATA, "timestamp", ["_id", "progID", "ousUID", "timestamp"]),
)


class Views:
    def __init__(self, server, hub):
        self.server = server
        self.hub = hub
        self._cache = {}   # key -> (table version, value)
        self._reading = set()   # tables whose refused documents are being read in the background
        self._lock = threading.Lock()
        # A page's queries are independent: asked at once, CouchDB works on
        # one while we read another's answer.
        self._queries = ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="dashboard-query")

    def init_app(self, app):
        app.extensions["draws-views"] = self

    def at_once(self, *calls):
        """The results of CALLS (functions without arguments), run concurrently."""
        return [f.result() for f in [self._queries.submit(call) for call in calls]]

    def _cached(self, key, table, compute):
        """COMPUTE(), reused until TABLE changes (only while its feed tells us; never for no TABLE)."""
        if table is None or not self.hub.follows(table):
            return compute()
        version = self.hub.versions[table]
        hit = self._cache.get(key)
        if hit and hit[0] == version:
            return hit[1]
        value = compute()
        self._cache[key] = (version, value)
        return value

    def _read(self, queries):
        """{key: value} of QUERIES, (key, table, compute) each, asked at once and cached.

        Each query is one request (or two), never a query that asks others:
        a pool thread never waits for another, so no page can starve one.
        """
        return dict(zip([key for key, _, _ in queries],
                        self.at_once(*[lambda k=k, t=t, c=c: self._cached(k, t, c) for k, t, c in queries])))

    # -- what the pages read: the status table by state, the bus, the newest rows of the others
    def _status_queries(self, newest=None):
        """The OUSs of every live state, the table's total, and the NEWEST of the done state (if asked).

        The live states hold today's work and are read whole, with one range
        of the state index. Delivered grows with the history, so only its
        newest are read (an index on state and time), and it is counted as
        the table's documents less the live ones.
        """
        db = self.server.db(tables.STATUS)
        queries = [("live", tables.STATUS, self._live), ("status-total", tables.STATUS, lambda: count_docs(db))]
        if newest:
            queries.append((f"newest:{newest}", tables.STATUS, lambda: self._done_page(newest)))
        return queries

    def _live(self):
        """{state: its OUSs, newest first} of every state but Delivered (an odd one too)."""
        docs = self.server.db(tables.STATUS).find({"state": {"$gte": FIRST_LIVE_STATE}}, fields=OUS_FIELDS)
        by_state = {s: [] for s in STATES if s != DONE}
        for doc in docs:
            by_state.setdefault(str(doc.get("state")), []).append(ous_row(doc))
        for rows in by_state.values():
            rows.sort(key=_live_order, reverse=True)
        return by_state

    def _done_page(self, limit, older=None, newer=None):
        """LIMIT Delivered OUSs, newest first: the newest, or those just OLDER or NEWER than a bookmark.

        A bookmark is a row's [timestamp, id]: a page is one range of the
        state-time index, however deep (never a skip). OUSs of the same time
        are ordered by id here (the servers' own orders of ties differ), so
        the answer is read on until the ties it shows are all in it.
        """
        mark = older or newer
        selector = {"state": DONE, "timestamp": {"$gt": None}}
        if mark:
            selector["timestamp"] = {"$lte" if older else "$gte": mark[0]}
        direction = "asc" if newer else "desc"
        fetch = limit + 1 + bool(mark)   # a row past the page, and the bookmark's own row
        while True:
            docs = self.server.db(tables.STATUS).find(
                selector, sort=[{"state": direction}, {"timestamp": direction}], limit=fetch, fields=OUS_FIELDS)
            docs = _ties_by_id(docs, reverse=not newer)
            rows = [d for d in docs if not mark or d.get("timestamp") != mark[0]
                    or (d.get("_id") < mark[1] if older else d.get("_id") > mark[1])]
            last_time_complete = len(rows) >= limit and rows[limit - 1].get("timestamp") != docs[-1].get("timestamp")
            if len(docs) < fetch or last_time_complete:
                break
            fetch *= 4   # the last time shown may have more OUSs than were read
        rows = [ous_row(d) for d in rows[:limit]]
        return rows[::-1] if newer else rows

    def _by_state(self, found, newest=None):
        """{state: (count, newest OUSs)} in life-cycle order (odd states last), from the status queries."""
        live = found["live"]
        by_state = {s: (len(rows), rows) for s, rows in live.items()}
        by_state[DONE] = (max(0, found["status-total"] - sum(len(rows) for rows in live.values())),
                          found.get(f"newest:{newest}", []))
        return {s: by_state.pop(s) for s in STATES} | by_state

    def _bus_queries(self, recent=True):
        """The bus's live messages and count, and (if RECENT) its newest (the bus page's, not the overview's)."""
        db = self.server.db(tables.MSGQ)
        fields = {"fields": MESSAGE_FIELDS, "limit": SCAN_CAP + 1}
        queries = [("unread", tables.MSGQ, lambda: db.find({"consumed": False}, **fields)),
                   ("failed", tables.MSGQ, lambda: db.find({"status": "failed"}, **fields)),
                   ("claimed", tables.MSGQ, lambda: db.find({"status": "claimed"}, **fields)),
                   ("messages", tables.MSGQ, lambda: count_docs(db, messages=True))]
        if recent:
            queries.append(("recent", tables.MSGQ, lambda: newest_messages(db, BUS_CAP)))
        return queries

    def _table_queries(self):
        return [(key, table, lambda t=table, f=field, fs=fields: self._newest(t, f, fs))
                for key, table, field, fields in TABLES]

    def _newest(self, table, field, fields):
        db = self.server.db(table)
        rows = db.find({field: {"$gt": None}}, sort=[{field: "desc"}], limit=TABLE_CAP, fields=fields)
        for row in rows:
            if "dataProducts" in row:
                products = row["dataProducts"]
                row["dataProducts"] = len(products) if isinstance(products, list) else None
        return {"count": count_docs(db), "rows": rows}

    # -- the overview page
    def overview(self):
        newest = COLUMN_CAP
        found = self._read(self._status_queries(newest) + self._bus_queries(recent=False) + self._table_queries())
        by_state = self._by_state(found, newest)
        bus = _bus(found)
        data = {
            "ous_total": found["status-total"],
            "lifecycle": [{"state": s, "count": count} for s, (count, _) in by_state.items()],
            "columns": [{"state": s, "count": count, "ouss": rows[:COLUMN_CAP]}
                        for s, (count, rows) in by_state.items()],
            **{key: found[key] for key, _, _, _ in TABLES},
            "unread": _capped(bus["unread"], TABLE_CAP),
            "messages": {"total": bus["total"], "unread": bus["unread"]["count"],
                         "failed": bus["failed"]["count"], "claimed": bus["claimed"]},
        }
        return clipped(data)

    # -- one state's OUSs, paged
    def state(self, state, older=None, newer=None):
        """A page of STATE's OUSs, newest first: the newest, or those OLDER or NEWER than a bookmark.

        The page's first and last rows' bookmarks are the links to the newer
        and the older page (None where there is none). Delivered is read a page
        at a time through its index; the live states, read whole anyway, are
        paged in memory in the same order.
        """
        marked = older or newer
        newest = PAGE_SIZE + 1 if state == DONE and not marked else None
        queries = self._status_queries(newest)
        if state == DONE and marked:   # (not cached: a bookmark may be any row of the history)
            queries.append(("page", None, lambda: self._done_page(PAGE_SIZE + 1, older, newer)))
        found = self._read(queries)
        count, rows = self._by_state(found, newest)[state]
        if state != DONE:
            rows = _live_page(rows, PAGE_SIZE + 1, older, newer)
        elif marked:
            rows = found["page"]
        more = len(rows) > PAGE_SIZE   # one row more than a page: there is another page that way
        rows = rows[1:] if newer and more else rows[:PAGE_SIZE]
        return clipped({"state": state, "count": count, "ouss": rows,
                        "newer": bookmark(rows[0]) if rows and (older or newer and more) else None,
                        "older": bookmark(rows[-1]) if rows and (newer or more) else None})

    # -- the bus page
    def bus(self):
        data = _bus(self._read(self._bus_queries()))
        data["unread"] = _capped(data["unread"], BUS_CAP)
        data["failed"] = _capped(data["failed"], BUS_CAP)
        data["in_progress"] = data["in_progress"][:BUS_CAP]
        return clipped(data)

    # -- documents refused for their shape (a peer with a bug, or a forger)
    def refused(self):
        """The refused documents: counted per table, the newest BUS_CAP listed.

        Each table's list is kept in the table and brought up to date from its
        changes feed (shapes.Refusals), for at most REFUSED_PATIENCE seconds a
        look: a first look at a long history reads on in the background.
        """
        deadline = time.monotonic() + REFUSED_PATIENCE
        looks = self.at_once(*[lambda t=t: shapes.Refusals(self.server, t).catch_up(deadline) for t in tables.ALL])
        found = {t: kept for t, (kept, _) in zip(tables.ALL, looks)}
        behind = [t for t, (_, up_to_date) in zip(tables.ALL, looks) if not up_to_date]
        with self._lock:
            for table in set(behind) - self._reading:
                self._reading.add(table)
                threading.Thread(target=self._read_on, args=(table,), daemon=True, name=f"refused-{table}").start()
        newest = heapq.nlargest(BUS_CAP, ((when, n, {"table": t, "id": i, "reason": why, "found": when})
                                          for t, kept in found.items()
                                          for n, (i, why, when) in enumerate(kept["refused"])), key=lambda r: r[:2])
        rows = [row for _, _, row in newest]
        return clipped({"total": sum(len(kept["refused"]) for kept in found.values()),
                        "capped": any(kept["capped"] for kept in found.values()), "behind": behind,
                        "by_table": [{"table": t, "count": len(kept["refused"]), "capped": kept["capped"]}
                                     for t, kept in found.items()],
                        "rows": rows})

    def _read_on(self, table):
        """Bring TABLE's refused documents up to date, however long it takes (a first look at a long history)."""
        try:
            shapes.Refusals(self.server, table).catch_up()
        except CouchError as exc:
            log.warning("reading the refused documents of %s: %s", table, exc)
        finally:
            with self._lock:
                self._reading.discard(table)

    # -- finding an OUS by (the start of) its UID
    def search(self, text):
        """The OUSs whose UID starts with TEXT (uid://A001/X12, A001/X12 or uid___A001_X12), by id range."""
        prefix = uid_prefix(text)
        rows = []
        if prefix:
            found = self.server.db(tables.STATUS).all_docs(
                startkey=prefix, endkey=prefix + "\ufff0", limit=PAGE_SIZE + 1,
                include_docs="true")["rows"]
            rows = [ous_row(r["doc"]) for r in found if isinstance(r.get("doc"), dict) and "entityId" in r["doc"]]
        return clipped({"query": text, "ouss": rows[:PAGE_SIZE], "more": len(rows) > PAGE_SIZE})

    # -- one OUS
    def ous(self, doc_id, cache_url):
        """Everything about one OUS, or None when there is no such OUS."""
        doc = self.server.db(tables.STATUS).get_or_none(doc_id)
        if doc is None or "entityId" not in doc:
            return None
        uid = doc["entityId"]
        flags = doc.get("flags") if isinstance(doc.get("flags"), dict) else {}
        history = doc.get("history") if isinstance(doc.get("history"), list) else []
        data = {"ous": ous_row(doc), "flags": {k: v for k, v in flags.items() if k != EXECUTIVE_FLAG},
                "changes": len(history), "timeline": timeline(history[-HISTORY_CAP:]), "reports": [], "report": None,
                "weblog_url": None, "products_url": None, "delivery": None, "products": []}
        if isinstance(uid, str):   # else nothing else can be found for it
            self._archive(data, uid, cache_url)
        xml = data["report"] and data["report"].pop("xml")
        data = clipped(data)
        if data["report"]:
            data["report"]["xml"] = clipped(xml, XML_CAP)
        return data

    def _archive(self, data, uid, cache_url):
        """Add the OUS's reports, weblog, delivery and products to DATA."""
        reports = sorted(self.server.db(tables.REPORTS).find({"ousUID": uid}),
                         key=lambda r: str(r.get("timestamp")), reverse=True)
        data["reports"] = [{"id": r["_id"], "timestamp": r.get("timestamp"), "source": r.get("source"),
                            "productsDir": r.get("productsDir")} for r in reports]
        latest = reports[0] if reports else None
        run = latest and latest.get("timestamp")
        if latest:
            data["report"] = decode_report(latest)
        if isinstance(run, str):
            stem = products.weblog_stem(uid, run)
            data["weblog_url"] = f"{cache_url}/weblogs/{quote(stem, safe=':')}/index.html"
            if isinstance(latest.get("productsDir"), str):
                data["products_url"] = f"{cache_url}/{quote(latest['productsDir'], safe=':')}/"
        delivery = Delivery(self.server).get(uid)
        if delivery is not None:
            data["delivery"] = {"timestamp": delivery.get("timestamp"), "complete": delivery.get("complete"),
                                "dataProducts": names(delivery.get("dataProducts"))}
        data["products"] = self._products(uid, run if isinstance(run, str) else None,
                                          (delivery or {}).get("dataProducts"))

    def _products(self, uid, run, delivered):
        """The OUS's products (expected from its latest RUN, recorded, DELIVERED) and their NGAS copy."""
        delivered = set(names(delivered))
        expected = set()
        if run:
            expected = set(products.product_names(uid, run))
            expected.add(products.weblog_name(uid, run))
        # A record's id is its file's name with "_" for ":" (spec §2): show the name.
        by_id = {doc_id(name): name for name in expected | delivered}
        recorded = {by_id.get(doc_id(d["_id"]), d["_id"]) for d in Metadata(self.server).for_ous(uid)}
        ngas = Ngas(self.server)
        rows = []
        for name in sorted(expected | recorded | delivered)[:PRODUCTS_CAP]:
            stored = ngas.get(name) or {}
            rows.append({"name": name, "metadata": name in recorded, "delivered": name in delivered,
                         "ngas": bool(stored), "size": stored.get("size"),
                         "checksum": stored.get("checksum") if isinstance(stored.get("checksum"), str) else None,
                         "writeTimestamp": stored.get("writeTimestamp")})
        return rows


# -- paging
def bookmark(row):
    """Where a page starts or ends: the row's [timestamp, id] (its place in the pages' order)."""
    return [row["timestamp"], row["id"]]


def _ties_by_id(docs, reverse):
    """DOCS (sorted by time) with the documents of one time sorted by id."""
    return [d for _, same in itertools.groupby(docs, key=lambda d: d.get("timestamp"))
            for d in sorted(same, key=lambda d: str(d.get("_id")), reverse=reverse)]


def _order(timestamp, ous_id):
    return str(timestamp or ""), str(ous_id)


def _live_order(row):
    return _order(row["timestamp"], row["id"])


def _live_page(rows, limit, older=None, newer=None):
    """LIMIT of ROWS (newest first): the first, or those OLDER or NEWER than a bookmark."""
    if older:
        return [r for r in rows if _live_order(r) < _order(*older)][:limit]
    if newer:
        return [r for r in rows if _live_order(r) > _order(*newer)][-limit:]
    return rows[:limit]


# -- shaping helpers
def ous_row(doc):
    flags = doc.get("flags") if isinstance(doc.get("flags"), dict) else {}
    return {"id": doc.get("_id"), "uid": doc.get("entityId"), "progID": doc.get("progID"),
            "state": doc.get("state"), "substate": doc.get("substate"),
            "executive": flags.get(EXECUTIVE_FLAG), "timestamp": doc.get("timestamp"),
            "waiting": waiting_for_person(doc.get("state"), doc.get("substate"))}


def names(value):
    """The file names in VALUE (a list, from a document): strings a file may be called, at most PRODUCTS_CAP."""
    if not isinstance(value, list):
        return []
    return [n for n in value if isinstance(n, str) and 0 < len(n) <= 255][:PRODUCTS_CAP]


def clipped(value, cap=FIELD_CAP):
    """VALUE with every string longer than CAP cut short (saying how long it was), lists too."""
    if isinstance(value, str):
        return value if len(value) <= cap else f"{value[:cap]}… ({len(value):,} characters)"
    if isinstance(value, dict):
        return {clipped(k, cap): clipped(v, cap) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clipped(v, cap) for v in value[:LIST_CAP]]
    return value


def waiting_for_person(state, substate):
    """Why an OUS in STATE/SUBSTATE will not move until a person acts, or None."""
    if state == "ReadyForProcessing" and substate == "ManualCalibration":
        return "ManualCalibration is never processed by the Pipeline: a person calibrates it by hand"
    if state == "ProcessingProblem":
        return "the Pipeline failed: a person looks at why and runs the launcher again"
    return None


def _listing(messages):
    """Messages newest first, with their count per selector."""
    capped = len(messages) > SCAN_CAP
    messages = sorted(messages[:SCAN_CAP], key=lambda m: str(m.get("creationTimestamp")), reverse=True)
    counts = collections.Counter(str(m.get("selector")) for m in messages)
    replies = {m["selector"]: m["replyTo"] for m in messages if "replyTo" in m}
    return {"count": len(messages), "capped": capped,
            "by_selector": [dict(selector=s, count=n, **({"replyTo": replies[s]} if s in replies else {}))
                            for s, n in sorted(counts.items())],
            "rows": messages}


def _bus(found):
    """The bus panel from the bus queries' answers."""
    unread, failed, claimed, recent = (found.get(k, []) for k in ("unread", "failed", "claimed", "recent"))
    label_replies(unread + failed + claimed + recent)
    return {"total": found["messages"], "unread": _listing(unread), "failed": _listing(failed),
            "claimed": len(claimed[:SCAN_CAP]), "in_progress": _listing(claimed)["rows"], "recent": recent}


def uid_prefix(text):
    """The status document id (or its start) that TEXT names: uid://A001/X1, A001/X1 or uid___A001_X1.

    uid://X1/X1/Xb3 may also arrive as uid:/X1/X1/Xb3 when something on the
    way merged the slashes.
    """
    text = (text or "").strip()
    if text.startswith("uid:"):
        text = "uid://" + text[len("uid:"):].lstrip("/")
    elif text and not text.startswith("uid___"):
        text = "uid://" + text.lstrip("/")
    return encode_uid(text) if text else ""


def label_replies(messages):
    """Mark each RPC reply among MESSAGES with its request ("replyTo"), when that is among them too."""
    requests = {m["msgbackID"]: m for m in messages if isinstance(m.get("msgbackID"), str)}
    for m in messages:
        selector = m.get("selector")
        if isinstance(selector, str) and REPLY_SELECTOR.fullmatch(selector):
            request = requests.get(selector)
            m["replyTo"] = {k: request.get(k) for k in ("_id", "selector", "creationTimestamp")} \
                if request else {}


def _capped(listing, cap):
    return dict(listing, rows=listing["rows"][:cap])


def newest_messages(db, limit):
    """The LIMIT newest messages (MESSAGE_FIELDS only), newest first.

    Read from _all_docs backwards: message ids start with their creation
    time, and every other msgq document sorts after ":" (see count_docs).
    A third of the time of a Mango query sorted by time.
    """
    rows = db.all_docs(startkey=":", descending="true", limit=limit, include_docs="true")["rows"]
    return [{f: r["doc"][f] for f in MESSAGE_FIELDS if f in r["doc"]} for r in rows if r.get("doc")]


def count_docs(db, messages=False):
    """Documents in DB, design documents (and, for msgq, groups) left out: one request.

    _all_docs gives the table's total_rows whatever range it is asked for,
    so one range of the others tells both. It sorts ids by their raw bytes:
    message ids start with a digit (their creation time), so every other msgq
    document sorts after ":".
    """
    others = db.all_docs(startkey=":") if messages else db.all_docs(startkey="_design/", endkey="_design0")
    return others["total_rows"] - len(others["rows"])


def _seconds(ts):
    try:
        return parse_timestamp(ts)
    except (TypeError, ValueError):
        return None


def timeline(history, now=None):
    """The OUS's history with the time spent in each entry (the last one: until now)."""
    now = now if now is not None else datetime.datetime.now(datetime.timezone.utc).timestamp()
    entries = [h for h in history if isinstance(h, dict)]
    rows = []
    for i, entry in enumerate(entries):
        start = _seconds(entry.get("timestamp"))
        end = _seconds(entries[i + 1].get("timestamp")) if i + 1 < len(entries) else now
        spent = max(0.0, end - start) if start is not None and end is not None else None
        rows.append({"state": entry.get("state"), "substate": entry.get("substate"),
                     "timestamp": entry.get("timestamp"), "seconds": spent,
                     "current": i == len(entries) - 1})
    # Each entry's segment of a 100-wide bar, never too thin to see.
    total = sum(r["seconds"] or 0 for r in rows)
    widths = [max(0.015, (r["seconds"] or 0) / total) if total else 1 for r in rows]
    offset = 0.0
    for r, w in zip(rows, widths):
        r["share"] = round(100 * w / sum(widths), 3)
        r["offset"] = round(offset, 3)
        offset += r["share"]
    return rows


def decode_report(doc):
    """The Pipeline report: its run, the XML text, its summary and its stages with their scores.

    A report of another shape is shown as its fields, (label, value) pairs.
    """
    data = {"timestamp": doc.get("timestamp"), "source": doc.get("source"),
            "productsDir": doc.get("productsDir"), "xml": None, "summary": [], "stages": [],
            "fields": [], "error": None}
    try:
        data["xml"] = Reports.decode(doc)
        root = ET.fromstring(data["xml"])
    except (KeyError, TypeError, ValueError, ET.ParseError) as exc:
        data["error"] = f"the report cannot be read: {exc}"
        return data
    # The shape draws/pipeline.py writes (like the real PipelineAquaReport).
    for label, path, attribute in REPORT_SUMMARY:
        element = root.find(path)
        value = None if element is None else element.get(attribute) if attribute else element.text
        if value is not None:
            data["summary"].append((label, value.strip()))
    for stage in root.findall("QaPerStage/Stage"):
        score = stage.find("RepresentativeScore")
        data["stages"].append({"number": stage.get("Number"), "name": stage.get("Name"),
                               "score": _score(None if score is None else score.get("Score"))})
    if not data["summary"] and not data["stages"]:
        data["fields"] = list(_fields(root))
    return data


REPORT_SUMMARY = (("Program", "ProjectStructure/ProposalCode", None),
                  ("OUS", "ProjectStructure/OusEntityId", None),
                  ("Report date", "QaSummary/ReportDate", None),
                  ("Recipe", "QaSummary/ProcessingRecipe", None),
                  ("Representative score", "QaSummary/RepresentativeScore", "Score"))


def _score(text):
    """A QA score and its band (ALMA's: below 0.33 bad, below 0.66 poor, else good)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return {"value": text, "band": None}
    return {"value": text, "band": "bad" if value < 0.33 else "poor" if value < 0.66 else "good"}


def _fields(element, path=()):
    """(label, value) of every attribute and leaf element, labelled by its path below the root."""
    here = path + (element.tag,)
    label = " › ".join(here[1:]) or element.tag
    for name, value in element.attrib.items():
        yield f"{label} @{name}", value
    children = list(element)
    for child in children:
        yield from _fields(child, here)
    if not children and (element.text or "").strip():
        yield label, element.text.strip()
