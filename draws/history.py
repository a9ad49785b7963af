"""Made-up history: tables filled as a long-running system leaves them, for
measurements and tests of scale (the benchmarks, the dashboard's tests)."""

import uuid

from . import tables
from .ous import STATES
from .timestamps import timestamp

PROGID = "2015.1.00657.S"


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
