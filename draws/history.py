"""Made-up history: tables filled as a long-running system leaves them, for
measurements and tests of scale (the benchmarks, the dashboard's tests).

:func:`generate` writes N delivered OUSs in the end state of spec §5. Each
is taken through its life cycle by the project's own writers (StatusTable,
Reports, Metadata, Delivery, Ngas, Bus, the message builders) against
tables kept in memory, under a made-up clock, and the documents they leave
are then written in bulk: ids, fields and message shapes are the life
cycle's own, whatever the code makes them. Only what receivers add when
they take a message (``_handled``) is written here.
"""

import base64
import contextlib
import datetime
import logging
import random
import types
import uuid
from concurrent.futures import ThreadPoolExecutor

from . import messages, rpc, tables
from .actors.xtss import Xtss
from .archive import Delivery, Metadata, Ngas, Reports
from .bus import Bus
from .couch import Database
from .exceptions import DrawsError, NotFound
from .ous import PIPELINE_RECIPES, STATES, StatusTable
from .products import product_names, products_dir, weblog_name, weblog_stem
from .timestamps import clock, timestamp

PROGID = "2015.1.00657.S"
SITE = "EU"          # where the made-up OUSs were processed
BATCH = 2000         # documents per bulk write


# -- the dashboard's scale case (a mix of states, a busy msgq)

def populate_scale(server, uid, ouss=1000, messages=10000):
    """The dashboard's scale case: OUSS OUSs spread over the states, MESSAGES
    messages (1 in 40 unconsumed, some failed) about UID."""
    status, msgq = server.db(tables.STATUS), server.db(tables.MSGQ)
    now = timestamp()
    prefix = uid.split("/")[2]
    status.bulk([{"_id": f"uid___{prefix}_S{i}_X{i}", "entityId": f"uid://{prefix}/S{i}/X{i}",
                  "progID": PROGID, "state": STATES[i % len(STATES)], "substate": "PipelineImaging",
                  "flags": {}, "timestamp": now,
                  "history": [{"state": s, "substate": None, "timestamp": now}
                              for s in STATES[:1 + i % len(STATES)]]}
                 for i in range(ouss)])
    for start in range(0, messages, 1000):
        msgq.bulk([{"_id": f"{now}-{uuid.uuid4().hex}", "creationTimestamp": now, "originIP": "127.0.0.1",
                    "selector": ("xtss", "ingest.JAO", "cached.EU")[n % 3], "consumed": n % 40 != 0,
                    "status": None if n % 40 == 0 else ("failed" if n % 99 == 0 else "done"),
                    "error": "InvalidRequest: bad body" if n % 99 == 0 else None,
                    "body": {"ousUID": uid, "pad": "x" * 200}}
                   for n in range(start, min(start + 1000, messages))])


def fill_consumed(server, count, batch=2000):
    """Add COUNT consumed messages to msgq."""
    db = server.db(tables.MSGQ)
    now = timestamp()
    for start in range(0, count, batch):
        docs = [{"_id": f"{now}-{uuid.uuid4().hex}", "creationTimestamp": now, "originIP": "127.0.0.1",
                 "selector": "bench.old", "consumed": True, "status": "done", "body": {"n": start + i}}
                for i in range(min(batch, count - start))]
        db.bulk(docs)


# -- delivered OUSs, as their life cycle leaves them

class _Table(Database):
    """A table kept in memory, for the project's writers to fill."""

    def __init__(self, name):
        self.name = name
        self.docs = {}

    def get(self, doc_id, **params):
        # The document itself, not a copy: the writers' changes never fail
        # half-way here, and copies cost most of the generator's time.
        if doc_id not in self.docs:
            raise NotFound(f"{self.name}/{doc_id}", 404)
        return self.docs[doc_id]

    def put(self, doc):
        doc["_rev"] = "made-up"   # dropped before the real write
        self.docs[doc["_id"]] = doc   # the writers never change a document they have written
        return doc

    def bulk(self, docs):
        return [{"ok": True, "id": self.put(d)["_id"]} for d in docs]


class _Tables:
    """A Server-like set of _Tables."""

    def __init__(self):
        self.tables = {name: _Table(name) for name in tables.ALL}
        self.user = None

    def db(self, name):
        return self.tables[name]


class _Clock:
    """Made-up time: each reading a few milliseconds on; pauses between the actors' steps."""

    def __init__(self, rng, start):
        self.rng = rng
        self.now = start

    def __call__(self):
        self.now += datetime.timedelta(milliseconds=self.rng.randint(2, 60))
        return self.now

    def wait(self, low, high):
        self.now += datetime.timedelta(seconds=self.rng.uniform(low, high))


@contextlib.contextmanager
def _repeatable_uuids(rng):
    """Message ids and reply selectors drawn from RNG, so that --seed repeats them too."""
    real = uuid.uuid4
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    try:
        yield
    finally:
        uuid.uuid4 = real


def _handled(doc, by, at, request=True):
    """DOC as its receiver BY left it: taken and done (a reply is taken by its caller)."""
    doc.update(consumed=True, status="done", consumedBy=by.identity, consumedAt=at, handledAt=at)
    if request:
        doc["attempts"] = 1


class _LifeCycle:
    """Takes OUSs through the life cycle in memory, the actors' steps in the actors' order."""

    def __init__(self, rng, keep_messages_after):
        self.rng = rng
        self.keep_after = keep_messages_after    # messages created before this are left out
        self.memory = _Tables()
        self.status = StatusTable(self.memory)
        self.reports, self.metadata = Reports(self.memory), Metadata(self.memory)
        self.delivery, self.ngas = Delivery(self.memory), Ngas(self.memory)
        # XTSS itself serves the requests (quietly: a line per request would be millions).
        quiet = logging.getLogger("draws.history.xtss")
        quiet.setLevel(logging.WARNING)
        self.xtss_service = Xtss(types.SimpleNamespace(server=self.memory, log=quiet))
        for table in (self.status, self.delivery, self.xtss_service.status):
            table.recent = None   # no copies to keep: see _Table.get
        self.buses = {}

    def bus(self, actor):
        if actor not in self.buses:
            self.buses[actor] = Bus(self.memory, actor=actor)
        return self.buses[actor]

    def send(self, sender, receiver, *message):
        bus = self.bus(sender)
        doc = bus.new_message(*message)
        _handled(doc, self.bus(receiver), timestamp())
        self.memory.db(tables.MSGQ).put(doc)

    def xtss(self, caller, operation, uid, value=None):
        """An XTSS request from CALLER, served, and its reply, taken."""
        caller_bus, xtss = self.bus(caller), self.bus("xtss")
        request = caller_bus.new_message(*messages.xtss_set(operation, uid, value),
                                          msgback_id=rpc.new_reply_selector())
        reply = self.xtss_service(request["body"])
        _handled(request, xtss, timestamp())
        reply = xtss.new_message(request["msgbackID"], reply)
        _handled(reply, caller_bus, timestamp(), request=False)
        self.memory.db(tables.MSGQ).bulk([request, reply])

    def deliver(self, progid, uid, recipe, start):
        """One OUS from launch to Delivered, its first step at START (a datetime)."""
        from .actors.pipeline import STAGES, report_xml, weblog_html, weblog_zip
        rng, the_clock = self.rng, _Clock(self.rng, start)
        with clock(the_clock):
            self.status.reset(progid, uid, recipe)                      # launcher
            the_clock.wait(1, 600)                                      # DRA
            self.xtss("dra", "set-exec", uid, SITE)
            self.xtss("dra", "set-state", uid, "Processing")
            self.send("dra", "torque-maui", *messages.process(SITE, progid, uid, recipe))
            the_clock.wait(60, 4 * 3600)                                # the Pipeline runs
            run = timestamp()
            scores = {stage: round(rng.uniform(0.5, 1.0), 2) for stage in STAGES}
            name = products_dir(progid, run)
            weblog = weblog_zip(weblog_stem(uid, run), weblog_html(progid, uid, recipe, run, scores),
                                the_clock.now.timetuple())
            report = messages.report(uid, run, SITE, report_xml(progid, uid, recipe, run, scores), name)
            for message, receiver in ((messages.cached("JAO", "productsdir", SITE, name), "replicated-cache"),
                                      (messages.cached("JAO", "weblog", SITE, weblog_name(uid, run)),
                                       "replicated-cache"),
                                      (messages.cached(SITE, "weblog", SITE, weblog_name(uid, run)),
                                       "replicated-cache"),
                                      (report, "aqua-qa2")):
                self.send("pipeline-driver", receiver, *message)
            self.ngas.archive(weblog_name(uid, run), weblog, "application/zip")    # JAO's cache
            body = report[1]
            self.reports.store(uid, run, body["report"], name, SITE)              # AQUA/QA2
            self.xtss("pipeline-driver", "set-state", uid, "ReadyForReview")
            the_clock.wait(600, 3 * 86400)                              # a person reviews
            self.xtss("aqua-qa2", "set-state", uid, "Reviewing")
            the_clock.wait(30, 1800)
            self.xtss("aqua-qa2", "set-state", uid, "Verified")
            self.send("aqua-qa2", "product-ingestor", *messages.ingest(uid, run, name))
            self.xtss("aqua-qa2", "set-state", uid, "DeliveryInProgress")
            for substate in ("IngestionTriggered", "AnalyzingProducts", "IngestingProducts"):
                self.xtss("product-ingestor", "set-substate", uid, substate)
                the_clock.wait(1, 10)
            self.delivery.start(progid, uid)
            for i, product in enumerate(product_names(uid, run)):
                # The Pipeline's products, with a few random bytes for its kilobyte.
                content = (f"product {i} of {uid} ({progid}, {recipe}), run {run}\n".encode()
                           + rng.randbytes(16))
                self.ngas.archive(product, content)
                self.metadata.record(product, progid, uid, run)
                self.delivery.add(uid, product)
            self.delivery.complete(uid)
            self.xtss("product-ingestor", "set-substate", uid, "ProductsIngested")
            the_clock.wait(1, 120)                                      # the Data Tracker
            self.xtss("data-tracker", "clear-exec", uid)
            self.xtss("data-tracker", "set-state", uid, "Delivered")
            return the_clock.now

    def take(self):
        """The documents left so far, per table, ready to write; memory is emptied."""
        out = {}
        for name, table in self.memory.tables.items():
            docs = list(table.docs.values())
            table.docs.clear()
            if name == tables.MSGQ:
                docs = [d for d in docs if d["creationTimestamp"] >= self.keep_after]
            for doc in docs:
                doc.pop("_rev", None)
            out[name] = docs
        return out


def uid_of(seed, i):
    """The I-th made-up OUS of SEED's history."""
    return f"uid://H{seed}/G{i // 1000}/X{i}"


def holdings(server):
    """{table: how many documents it holds} of the tables holding any (design documents aside)."""
    out = {}
    for name in tables.ALL:
        db = server.db(name)
        design = len(db.all_docs(startkey="_design/", endkey="_design0")["rows"])
        count = db.info()["doc_count"] - design
        if count:
            out[name] = count
    return out


def generate(server, ouss, seed=1, days=1000, keep_messages=7 * 86400, force=False, now=None,
             progress=None):
    """Write OUSS delivered OUSs, delivered over the last DAYS days up to NOW.

    Messages are written only when created less than KEEP_MESSAGES seconds
    before NOW (None: all of them): a site keeping msgq small by its
    retention setting holds no older ones. Refuses (DrawsError) to write
    into tables holding anything unless FORCE. Returns {table: documents written}.
    """
    if not force:
        held = holdings(server)
        if held:
            raise DrawsError("the tables are not empty (" + ", ".join(f"{n}: {c}" for n, c in held.items())
                             + "): a made-up history goes into empty tables only (--force to add it anyway)")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    keep_after = "" if keep_messages is None else timestamp(now - datetime.timedelta(seconds=keep_messages))
    rng = random.Random(f"history:{seed}")
    life = _LifeCycle(rng, keep_after)
    programs = [f"20{15 + k % 10}.1.{rng.randint(0, 99999):05d}.S" for k in range(max(1, ouss // 20))]
    # Each OUS's life cycle ends at most about 3.5 days after it starts.
    first = now - datetime.timedelta(days=days, seconds=4 * 86400)
    step = datetime.timedelta(days=days) / max(1, ouss)
    written = {name: 0 for name in tables.ALL}
    with ThreadPoolExecutor(3) as pool, _repeatable_uuids(rng):
        pending = []
        for i in range(ouss):
            life.deliver(rng.choice(programs), uid_of(seed, i), rng.choice(PIPELINE_RECIPES),
                         first + step * i)
            if (i + 1) % 500 == 0 or i + 1 == ouss:
                for name, docs in life.take().items():
                    for start in range(0, len(docs), BATCH):
                        pending.append(pool.submit(_write, server.db(name), docs[start:start + BATCH]))
                    written[name] += len(docs)
                while len(pending) > 12:   # a bounded backlog: memory stays small
                    pending.pop(0).result()
                if progress:
                    progress(i + 1)
        for job in pending:
            job.result()
    return written


def _write(db, docs):
    errors = [r for r in db.bulk(docs) if r.get("error") not in (None, "conflict")]
    if errors:
        raise DrawsError(f"{db.name}: {len(errors)} documents not written ({errors[0].get('reason')})")
