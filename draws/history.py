"""Made-up history: tables filled as a long-running system leaves them, for
measurements and tests of scale (the benchmarks, the dashboard's tests).

:func:`generate` writes N delivered OUSs in the end state of spec §5. A few
made-up OUSs (one per *template*) are taken through their life cycle by the
actors' own code (the launcher, DRA, XTSS, the Pipeline Driver's outcome,
AQUA/QA2, the Product Ingestor, the Data Tracker) against tables kept in
memory and under a made-up clock; each of the N OUSs is then a template's
documents *stamped* with its own UID, program, time and fresh ids, and the
bytes made from them (report, weblog, products) made again: the same
documents its own life cycle would have left, at a few hundredths of the
cost (running the actors' code took 16 ms an OUS, four times what the
server spends storing its documents). Written here are only what a
receiver adds to a message it takes (``_handled``), the Pipeline's
products (a few bytes each) and the pauses between steps.
"""

import base64
import collections
import contextlib
import datetime
import json
import logging
import random
import re
import types
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

from . import messages, rpc, tables
from .actors.dra import Dra
from .actors.ingestor import Ingestor
from .actors.launcher import Launcher
from .actors.pipeline import STAGES, report_xml, weblog_html, weblog_zip
from .actors.pipeline_driver import PipelineDriver
from .actors.qa2 import Qa2
from .actors.tracker import Tracker
from .actors.xtss import Xtss
from .archive import Ngas, checksum
from .bus import Bus
from .config import Settings
from .couch import Database
from .exceptions import DrawsError, NotFound
from .ids import doc_id
from .ous import PIPELINE_RECIPES, STATES, StatusTable
from .products import product_names, products_dir, weblog_name, weblog_stem
from .receiver import Message
from .timestamps import clock, timestamp
from .xtss import XtssClient

PROGID = "2015.1.00657.S"
SITE = "EU"          # where the made-up OUSs were processed
BATCH = 1000         # documents per bulk write
WRITERS = 3          # bulk writes in flight: the server stores one while the next travels
TEMPLATES = 64       # life cycles run for real (each OUS is one of them, stamped): their
                     # pauses and scores are what varies from one OUS to the next


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
        msgq.bulk([{"_id": doc_id(f"{now}-{uuid.uuid4().hex}"), "creationTimestamp": now, "originIP": "127.0.0.1",
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
        docs = [{"_id": doc_id(f"{now}-{uuid.uuid4().hex}"), "creationTimestamp": now, "originIP": "127.0.0.1",
                 "selector": "bench.old", "consumed": True, "status": "done", "body": {"n": start + i}}
                for i in range(min(batch, count - start))]
        db.bulk(docs)


# -- delivered OUSs, as their life cycle leaves them

class _Table(Database):
    """A table kept in memory, for the project's writers to fill."""

    def __init__(self, name):
        self.name = name
        self.docs = {}
        self.written = []   # since the life cycle last looked (see _LifeCycle.receive)

    def get(self, doc_id, **params):
        # The document itself, not a copy: the writers' changes never fail
        # half-way here, and copies cost most of the generator's time.
        if doc_id not in self.docs:
            raise NotFound(f"{self.name}/{doc_id}", 404)
        return self.docs[doc_id]

    def put(self, doc):
        doc["_rev"] = "made-up"   # dropped before the real write
        self.docs[doc["_id"]] = doc   # the writers never change a document they have written
        self.written.append(doc)
        return doc

    def get_many(self, doc_ids):
        return {i: self.docs[i] for i in doc_ids if i in self.docs}

    def bulk(self, docs):
        return [{"ok": True, "id": self.put(d)["_id"]} for d in docs]

    def find(self, selector, **options):
        """Equality selectors only (all the actors ask of it here)."""
        return [d for d in self.docs.values() if all(d.get(k) == v for k, v in selector.items())]

    def get_attachment(self, doc_id, name):
        return base64.b64decode(self.get(doc_id)["_attachments"][name]["data"])


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
    """Message ids, reply selectors and step ids drawn from RNG, so that --seed repeats them too."""
    real = uuid.uuid4
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    try:
        yield
    finally:
        uuid.uuid4 = real


def _handled(doc, by, request=True):
    """DOC as the receiver on bus BY leaves it, taken and done (a reply: taken by its caller).
    The only part of a message's life written here rather than by the project's code."""
    at = timestamp()
    doc.update(consumed=True, status="done", consumedBy=by.identity, consumedAt=at, handledAt=at)
    if request:
        doc["attempts"] = 1


class _LocalXtss(XtssClient):
    """XTSS called in this process; each request and its reply left in msgq as the bus leaves them."""

    def __init__(self, life, caller):
        super().__init__(life.bus(caller))
        self.life = life

    def request(self, selector, body):
        caller, xtss = self.bus, self.life.bus("xtss")
        body = json.loads(json.dumps(body))   # as it arrives: through JSON (tuples become lists)
        request = caller.new_message(selector, body, msgback_id=rpc.new_reply_selector())
        result = self.life.xtss_service(body)
        _handled(request, xtss)
        reply = xtss.new_message(request["msgbackID"], result)
        _handled(reply, caller, request=False)
        self.life.msgq.bulk([request, reply])
        return self.answer(body, result)


class _MadeFile:
    """A product as the Product Ingestor reads it from its cache, made in memory."""

    def __init__(self, name, content):
        self.name, self.suffix, self.content = name, PurePosixPath(name).suffix, content

    def read_bytes(self):
        return self.content


class _Ingestor(Ingestor):
    """The Product Ingestor, the products made here rather than read from a cache."""

    def __init__(self, ctx, files):
        super().__init__(ctx)
        self.files = files

    def _check_arrived(self, message, uid, products_dir, folder, names):
        pass   # made here: always arrived

    def _product(self, folder, name):
        return _MadeFile(name, self.files[name])


RECEIVERS = {"pipeline.process": "torque-maui", "cached": "replicated-cache",
             "pipeline.report": "aqua-qa2", "ingest": "product-ingestor"}


class _LifeCycle:
    """Takes OUSs through the life cycle in memory: the actors' own steps, in their order."""

    def __init__(self, rng):
        self.rng = rng
        self.memory = _Tables()
        self.msgq = self.memory.db(tables.MSGQ)
        self.buses = {}
        # Quietly: a log line per step would be millions.
        self.log = logging.getLogger("draws.history.actors")
        self.log.setLevel(logging.WARNING)
        self.xtss_service = Xtss(self.ctx("xtss"))
        self.status = StatusTable(self.memory)
        self.dra = Dra(self.ctx("dra"), SITE)
        self.qa2 = Qa2(self.ctx("aqua-qa2"), "http://jao-cache")
        self.files = {}
        self.ingestor = _Ingestor(self.ctx("product-ingestor", local_cache="jao-cache"), self.files)
        self.tracker = Tracker(self.ctx("data-tracker"))   # no cache: it checks the bytes in NGAS
        self.jao_ngas = Ngas(self.memory)
        for table in (self.status, self.xtss_service.status, self.ingestor.status, self.ingestor.delivery,
                      self.tracker.status, self.tracker.delivery):
            table.recent = None   # no copies to keep: see _Table.get

    def bus(self, actor):
        if actor not in self.buses:
            self.buses[actor] = Bus(self.memory, actor=actor)
        return self.buses[actor]

    def ctx(self, actor, **settings):
        return types.SimpleNamespace(
            actor=actor, server=self.memory, bus=self.bus(actor), xtss=_LocalXtss(self, actor), log=self.log,
            settings=Settings(location=SITE if actor in ("pipeline-driver", "data-tracker") else "JAO",
                              delay_scale=0.0, **settings))

    def receive(self):
        """The messages sent and not taken yet, taken by their receivers; returns them."""
        new = [d for d in self.msgq.written if not d.get("consumed")]
        self.msgq.written.clear()
        for doc in new:
            _handled(doc, self.bus(RECEIVERS[doc["selector"].rsplit(".", 1)[0]]))
        return new

    def deliver(self, progid, uid, recipe, start):
        """One OUS from launch to Delivered, its first step at START (a datetime).
        Returns the bytes made for it on the way: {name: ("bytes", content) or
        ("zip", stem, page, when) for the weblog}."""
        rng, the_clock = self.rng, _Clock(self.rng, start)
        made = {}
        with clock(the_clock):
            Launcher(self.ctx("launcher"), progid, uid, recipe).run()
            the_clock.wait(1, 600)
            self.dra.assign(self.status.get(uid))
            self.receive()                                              # Torque/Maui
            the_clock.wait(60, 4 * 3600)                                # the Pipeline runs
            run = timestamp()
            scores = {stage: round(rng.uniform(0.5, 1.0), 2) for stage in STAGES}
            name, weblog = products_dir(progid, run), weblog_name(uid, run)
            assignment = self.status.get(uid)["assignment"]["id"]
            made["report"] = ("bytes", report_xml(progid, uid, recipe, run, scores))
            PipelineDriver(self.ctx("pipeline-driver"), progid, uid, recipe, assignment).finish(
                "ReadyForReview", [messages.cached("JAO", "productsdir", SITE, name),
                                   messages.cached("JAO", "weblog", SITE, weblog),
                                   messages.cached(SITE, "weblog", SITE, weblog),
                                   messages.report(uid, run, SITE, made["report"][1], name, assignment)])
            for doc in self.receive():
                if doc["selector"] == messages.REPORT_SELECTOR:
                    self.qa2.store(Message.from_doc(doc))
            made[weblog] = ("zip", weblog_stem(uid, run), weblog_html(progid, uid, recipe, run, scores),
                            the_clock.now)
            self.jao_ngas.archive(weblog, _made_bytes(made[weblog]), "application/zip")
            the_clock.wait(600, 3 * 86400)                              # a person reviews
            ous = self.status.get(uid)
            review = self.qa2.start_review(ous)
            the_clock.wait(30, 1800)
            self.qa2.decide(self.status.get(uid), self.qa2.current_report(ous), "P", review)
            (ingest,) = self.receive()
            for i, product in enumerate(product_names(uid, run)):
                # The Pipeline's products, with a few random bytes for its kilobyte.
                self.files[product] = (f"product {i} of {uid} ({progid}, {recipe}), run {run}\n".encode()
                                       + rng.randbytes(16))
                made[product] = ("bytes", self.files[product])
            self.ingestor.handle(Message.from_doc(ingest))
            self.files.clear()
            the_clock.wait(1, 120)
            self.tracker.check(self.status.get(uid))
            if self.status.get(uid)["state"] != "Delivered":
                raise DrawsError(f"{uid} did not reach Delivered in the made-up life cycle: "
                                 "the generator no longer follows the actors' steps")
        return made

    def take(self):
        """The documents left so far, per table, ready to write; memory is emptied."""
        out = {}
        for name, table in self.memory.tables.items():
            docs = list(table.docs.values())
            table.docs.clear()
            table.written.clear()
            for doc in docs:
                doc.pop("_rev", None)
            out[name] = docs
        return out


# -- many OUSs from a few life cycles

# The template OUS's UID parts and program: words found nowhere else, each
# replaced by the stamped OUS's own wherever it appears (in ids, file names,
# message bodies, reports, weblogs).
TEMPLATE_PARTS = ("QqPartA", "QqPartB", "QqPartC")
TEMPLATE_UID = "uid://" + "/".join(TEMPLATE_PARTS)
TEMPLATE_PROGID = "9999.Qq.99999.QQQ"

# What differs from one OUS to another in a template's texts: its times (as
# timestamp() writes them, as products_dir() does: 2026_01_01T01_57_36.619, or
# as ids.doc_id() does: 2026-01-01T01_57_36.619),
# its ids (uuid4().hex: message ids, reply selectors, steps, assignments), its
# UID and program, and the bytes made for it (marked "@@b64:K@@" & co. in the
# template's documents, K their index in the template's `made`).
_SLOTS = re.compile(
    r"(?P<time>\d{4}(?P<d>[-_])\d\d(?P=d)\d\dT\d\d(?P<t>[:_])\d\d(?P=t)\d\d\.\d{3})"
    r"|(?<![0-9a-f])(?P<hex>[0-9a-f]{32})(?![0-9a-f])"
    r"|(?P<word>" + "|".join(map(re.escape, TEMPLATE_PARTS + (TEMPLATE_PROGID,))) + ")"
    r'|"@@(?P<made>b64|checksum|size):(?P<index>\d+)@@"')


class _Text:
    """A text of a template: its literal pieces, and the slots between them (see _SLOTS)."""

    def __init__(self, text):
        self.parts = []
        at = 0
        for m in _SLOTS.finditer(text):
            self.parts.append(text[at:m.start()])
            if m["time"]:
                self.parts.append(("time", m["time"]))
            elif m["hex"]:
                self.parts.append(("hex", m["hex"]))
            elif m["word"]:
                self.parts.append(("word", m["word"]))
            else:
                self.parts.append((m["made"], int(m["index"])))
            at = m.end()
        self.parts.append(text[at:])

    def fill(self, stamp):
        return "".join(p if isinstance(p, str) else stamp.value(p) for p in self.parts)


def _made_bytes(what):
    kind, *args = what
    if kind == "zip":
        stem, page, when = args
        return weblog_zip(stem, page, when.timetuple())
    return args[0]


class _Template:
    """One OUS's life cycle, run for real, ready to be stamped on others."""

    def __init__(self, life, recipe, start):
        with _repeatable_uuids(life.rng):
            made = list(life.deliver(TEMPLATE_PROGID, TEMPLATE_UID, recipe, start).values())
        self.start = start
        # Bytes are texts here too (latin-1: any byte is one character, kept as it is).
        self.made = [(kind, _Text(args[0].decode("latin-1"))) if kind == "bytes" else
                     (kind, _Text(args[0]), _Text(args[1]), args[2]) for kind, *args in made]
        encoded = {}
        for k, what in enumerate(made):
            content = _made_bytes(what)
            encoded[base64.b64encode(content).decode()] = f"@@b64:{k}@@"
            encoded[checksum(content)] = f"@@checksum:{k}@@"
            encoded[("size", checksum(content))] = f"@@size:{k}@@"

        def mark(value):
            if isinstance(value, dict):
                out = {key: mark(v) for key, v in value.items()}
                if "size" in out and ("size", value.get("checksum")) in encoded:
                    out["size"] = encoded["size", value["checksum"]]
                return out
            if isinstance(value, list):
                return [mark(v) for v in value]
            return encoded.get(value, value) if isinstance(value, str) else value

        self.docs = {name: [(doc.get("creationTimestamp"), _Text(json.dumps(mark(doc))))
                            for doc in docs] for name, docs in life.take().items()}

    def stamp(self, uid, progid, start, new_id, keep_after=None):
        """{table: [documents]} of UID of PROGID, its life cycle begun at START (a datetime
        whole in milliseconds, as the template's); ids from NEW_ID(); messages created
        before the timestamp KEEP_AFTER are left out."""
        stamp = _Stamp(self, uid, progid, start - self.start, new_id)
        out = {}
        for name, docs in self.docs.items():
            out[name] = [json.loads(text.fill(stamp)) for created, text in docs
                         if not (keep_after and created and stamp.time(created) < keep_after)]
        return out


class _Stamp:
    """The values of one OUS stamped from a template, each made once (see _Text.fill)."""

    def __init__(self, template, uid, progid, shift, new_id):
        self.template, self.shift, self.new_id = template, shift, new_id
        self.words = dict(zip(TEMPLATE_PARTS, uid[len("uid://"):].split("/")), **{TEMPLATE_PROGID: progid})
        self.values = {}
        self.made = {}

    def time(self, text):
        """The template's timestamp TEXT (either form), moved to this OUS's time."""
        when = datetime.datetime.fromisoformat(text[:10].replace("_", "-") + text[10:].replace("_", ":"))
        return timestamp(when + self.shift)

    def value(self, slot):
        if slot not in self.values:
            kind, key = slot
            if kind == "time":   # with the template's separators (ids have "_" for ":")
                value = self.time(key)
                value = value[:10].replace("-", key[4]) + value[10:].replace(":", key[13])
            elif kind == "hex":
                value = self.new_id()
            elif kind == "word":
                value = self.words[key]
            else:
                content = self.content(key)
                value = (f'"{base64.b64encode(content).decode()}"' if kind == "b64" else
                         f'"{checksum(content)}"' if kind == "checksum" else str(len(content)))
            self.values[slot] = value
        return self.values[slot]

    def content(self, k):
        if k not in self.made:
            kind, *texts = self.template.made[k]
            if kind == "zip":
                stem, page, when = texts
                self.made[k] = _made_bytes(("zip", stem.fill(self), page.fill(self), when + self.shift))
            else:
                self.made[k] = texts[0].fill(self).encode("latin-1")
        return self.made[k]


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
    keep_after = None if keep_messages is None else timestamp(now - datetime.timedelta(seconds=keep_messages))
    rng = random.Random(f"history:{seed}")
    life = _LifeCycle(rng)
    programs = [f"20{15 + k % 10}.1.{rng.randint(0, 99999):05d}.S" for k in range(max(1, ouss // 20))]
    # Each OUS's life cycle ends at most about 3.5 days after it starts.
    first = _whole_ms(now - datetime.timedelta(days=days, seconds=4 * 86400))
    step = datetime.timedelta(days=days) / max(1, ouss)
    templates = [None] * min(ouss, TEMPLATES)

    def new_id():
        return uuid.UUID(int=rng.getrandbits(128), version=4).hex

    written = {name: 0 for name in tables.ALL}
    waiting = {name: [] for name in tables.ALL}
    with ThreadPoolExecutor(WRITERS) as pool:
        pending = collections.deque()

        def write(name, docs):
            pending.append(pool.submit(_write, server.db(name), docs))
            written[name] += len(docs)
            while len(pending) > 2 * WRITERS:   # a bounded backlog: memory stays small
                pending.popleft().result()

        for i in range(ouss):
            k = rng.randrange(len(templates))
            if templates[k] is None:
                templates[k] = _Template(life, PIPELINE_RECIPES[k % len(PIPELINE_RECIPES)], first)
            docs = templates[k].stamp(uid_of(seed, i), rng.choice(programs), _whole_ms(first + step * i),
                                      new_id, keep_after)
            for name, table_docs in docs.items():
                waiting[name] += table_docs
                if len(waiting[name]) >= BATCH:
                    write(name, waiting[name])
                    waiting[name] = []
            if progress and ((i + 1) % 500 == 0 or i + 1 == ouss):
                progress(i + 1)
        for name, docs in waiting.items():
            if docs:
                write(name, docs)
        for job in pending:
            job.result()
    return written


def _whole_ms(when):
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def _write(db, docs):
    errors = [r for r in db.bulk(docs) if r.get("error") not in (None, "conflict")]
    if errors:
        raise DrawsError(f"{db.name}: {len(errors)} documents not written ({errors[0].get('reason')})")
