"""The history generator (draws.history): delivered OUSs as their life cycle leaves them."""

import collections
import datetime
import json
import re

import pytest

from draws import tables
from draws.actors.cleaner import clear_all
from draws.archive import checksum
from draws.exceptions import DrawsError
from draws.history import generate, uid_of
from draws.ids import doc_id
from draws.ous import encode_uid, file_uid
from draws.timestamps import timestamp
from support import wait_for

PROG = "2015.1.00657.S"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def documents(server):
    """{table: [documents]} without design documents or revisions."""
    out = {}
    for name in tables.ALL:
        rows = server.db(name).all_docs(include_docs="true")["rows"]
        out[name] = [{k: v for k, v in r["doc"].items() if k != "_rev"}
                     for r in rows if not r["id"].startswith("_design/")]
        for doc in out[name]:
            for attachment in doc.get("_attachments", {}).values():
                attachment.pop("revpos")   # the revision that wrote it
    return out


def of_ous(docs, uid):
    """The documents of each table that belong to UID's life cycle: for msgq, the
    messages naming it and the replies to those (not the finds of DRA and
    AQUA/QA2, whose replies list whatever OUSs wait at the time)."""
    mentions = (uid, file_uid(uid))
    out = {name: [d for d in table if any(m in json.dumps(d) for m in mentions)
                  and not (name == tables.MSGQ and HEX32.match(d["selector"]))]
           for name, table in docs.items()}
    replies = {d["msgbackID"] for d in out[tables.MSGQ] if "msgbackID" in d}
    out[tables.MSGQ] += [d for d in docs[tables.MSGQ] if d["selector"] in replies]
    return out


def shape(value):
    """VALUE with every leaf replaced by its type (lists of like things as one)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return sorted({json.dumps(shape(v), sort_keys=True) for v in value})
    return type(value).__name__


def message_shapes(messages):
    """What each message is: its selector (a reply's as 'reply'), fields, body and outcome."""
    def key(m):
        selector = "reply" if HEX32.match(m["selector"]) else m["selector"]
        body = m["body"] if isinstance(m["body"], int) else sorted(m["body"]) if isinstance(m["body"], dict) else m["body"]
        what = (m["body"].get("operation"), m["body"].get("value")) if selector == "xtss" else None
        return json.dumps([selector, sorted(m), body, what, m["consumed"], m["status"]], default=str)
    return collections.Counter(key(m) for m in messages)


def run_one_for_real(actors, server, uid):
    jao = {"DRAWS_LOCATION": "JAO"}
    eu = {"DRAWS_LOCATION": "EU", "DRAWS_LOCAL_CACHE": actors.env["DRAWS_EU_CACHE"]}
    actors.start("xtss.py", env=jao)
    actors.start("torque-maui.py", env=eu)
    actors.start("replicated-cache.py", "-p", 0, env=eu, name="cache-eu")
    actors.start("replicated-cache.py", "-p", 0, env=jao, name="cache-jao")
    actors.start("product-ingestor.py", env=jao)
    actors.start("data-tracker.py", env=eu)
    actors.start("dra.py", "-a", "EU", "--auto", env=jao)
    actors.start("aqua-qa2.py", "--auto", "P", env=jao)
    res = actors.run("launcher.py", PROG, uid, "PipelineCalibration", env=jao)
    assert res.returncode == 0, res.stderr
    status = server.db(tables.STATUS)
    wait_for(lambda: status.get(encode_uid(uid))["state"] == "Delivered",
             timeout=180, what=f"{uid} Delivered")
    msgq = server.db(tables.MSGQ)
    wait_for(lambda: not msgq.find({"consumed": False}) and not msgq.find({"status": "claimed"}),
             what="every message handled")
    actors.stop_all()
    return of_ous(documents(server), uid)


def test_a_generated_ous_is_one_that_went_through_the_life_cycle(actors, server):
    uid = "uid://X1/X1/Xr1"
    real = run_one_for_real(actors, server, uid)
    clear_all(server)
    generate(server, 1, seed=7, keep_messages=None)
    made = of_ous(documents(server), uid_of(7, 0))
    assert message_shapes(made[tables.MSGQ]) == message_shapes(real[tables.MSGQ])

    for name in tables.ALL:
        assert len(made[name]) == len(real[name]), name
        if name != tables.MSGQ:
            assert [shape(d) for d in made[name]] == [shape(d) for d in real[name]], name

    (ous,), (real_ous,) = made[tables.STATUS], real[tables.STATUS]
    assert [(h["state"], h["substate"]) for h in ous["history"]][1:] == \
        [(h["state"], h["substate"]) for h in real_ous["history"]][1:]    # the recipes may differ
    assert (ous["state"], ous["substate"], ous["flags"]) == ("Delivered", None, {})
    assert [h["timestamp"] for h in ous["history"]] == sorted(h["timestamp"] for h in ous["history"])
    (delivery,) = made[tables.DELIVERY]
    # A record's id is its file's name with "_" for ":" (spec §2), as everywhere made and real.
    assert delivery["complete"] and sorted(doc_id(n) for n in delivery["dataProducts"]) == sorted(
        d["_id"] for d in made[tables.METADATA])
    assert not [d["_id"] for docs in (made, real) for name in tables.ALL for d in docs[name] if ":" in d["_id"]]
    ngas = server.db(tables.NGAS)
    for doc in made[tables.NGAS]:
        content = ngas.get_attachment(doc["_id"], "content")
        assert checksum(content) == doc["checksum"] and len(content) == doc["size"]
    assert {d["_attachments"]["content"]["content_type"] for d in made[tables.NGAS]} == \
        {d["_attachments"]["content"]["content_type"] for d in real[tables.NGAS]}


def test_the_same_seed_writes_the_same_history(server):
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    generate(server, 5, seed=3, keep_messages=None, now=now)
    first = documents(server)
    clear_all(server)
    generate(server, 5, seed=3, keep_messages=None, now=now)
    assert documents(server) == first
    assert len(first[tables.STATUS]) == 5 and len(first[tables.NGAS]) == 30
    assert len(first[tables.METADATA]) == 25 and len(first[tables.REPORTS]) == 5


def test_only_the_messages_retention_keeps(server):
    now = datetime.datetime.now(datetime.timezone.utc)
    written = generate(server, 40, seed=2, days=100, keep_messages=7 * 86400, now=now)
    cutoff = timestamp(now - datetime.timedelta(days=7))
    msgq = documents(server)[tables.MSGQ]
    assert msgq and written[tables.MSGQ] == len(msgq) < 40 * 28
    assert min(m["creationTimestamp"] for m in msgq) >= cutoff
    assert all(m["consumed"] and m["status"] == "done" for m in msgq)


def test_it_refuses_tables_that_hold_anything(server, actors):
    server.db(tables.MSGQ).put({"_id": "someone-else", "selector": "x", "consumed": False})
    with pytest.raises(DrawsError, match="msgq: 1"):
        generate(server, 2)
    res = actors.run("draws", "history", "--ouss", "2")
    assert res.returncode == 1 and "not empty" in res.stderr and "--force" in res.stderr
    assert len(documents(server)[tables.STATUS]) == 0
    res = actors.run("draws", "history", "--ouss", "2", "--force")
    assert res.returncode == 0, res.stderr
    assert len(documents(server)[tables.STATUS]) == 2
    assert server.db(tables.MSGQ).get("someone-else")["consumed"] is False


@pytest.mark.parametrize("table, selector", [
    (tables.STATUS, {"outbox.sent": False}),                          # XTSS's reconciler, every 10 s
    (tables.STATUS, {"state": "Processing"}),                         # XTSS's finds, the reconciler
    (tables.MSGQ, {"consumed": False, "selector": {"$regex": "^x$"}}),  # a receiver's safety re-scan
    (tables.MSGQ, {"status": "claimed", "selector": {"$regex": "^x$"}}),
    (tables.REPORTS, {"ousUID": "uid://X1/X1/X1"}),                   # AQUA/QA2's report of an OUS
    (tables.METADATA, {"ousUID": "uid://X1/X1/X1"}),
])
def test_the_actors_queries_read_an_index_not_the_whole_table(server, table, selector):
    """Tables grow with the history: a query an actor makes over and over must not read them whole."""
    plan = server.request("POST", f"{table}/_explain", body={"selector": selector})
    assert plan["index"]["ddoc"] and plan["index"]["ddoc"].startswith("_design/draws-"), plan["index"]
