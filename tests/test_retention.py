"""msgq's retention, applied by each site's cache replicator (draws.retention)."""

import datetime

import pytest

from draws import tables
from draws.bus import Bus
from draws.config import load
from draws.exceptions import ConfigError
from draws.timestamps import clock
from support import wait_for
from test_multihost import NET, hosts, replication  # noqa: F401 (hosts: the fixture)

HOUR_AGO = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)


def old_messages(host, selector, outcomes):
    """Messages to SELECTOR sent an hour ago at HOST, one per outcome (None: unconsumed); their ids."""
    bus = Bus(host.server, actor="test")
    ids = {}
    with clock(lambda: HOUR_AGO):
        for outcome in outcomes:
            doc = bus.new_message(selector, {"outcome": outcome})
            if outcome:
                doc.update(consumed=True, status=outcome, handledAt=doc["creationTimestamp"])
            host.server.db(tables.MSGQ).put(doc)
            ids[outcome] = doc["_id"]
    return ids


def messages(host):
    return {d["_id"]: d for d in host.server.db(tables.MSGQ).find({"selector": {"$regex": "^test\\."}})}


def test_the_retention_setting():
    assert load({}).msgq_retention == 7 * 86400
    assert load({"DRAWS_MSGQ_RETENTION": "12h"}).msgq_retention == 12 * 3600
    assert load({"DRAWS_MSGQ_RETENTION": "0"}).msgq_retention == 0
    with pytest.raises(ConfigError, match="DRAWS_MSGQ_RETENTION"):
        load({"DRAWS_MSGQ_RETENTION": "soon"})


def test_purging_at_one_site_keeps_every_unhandled_message_of_both(hosts):  # noqa: F811
    jao = hosts("jao", f"{NET}.2", "JAO")
    arc = hosts("arc", f"{NET}.3", "EU")
    replication("setup", jao, arc)
    # Each site's own: one handled, one failed, one nobody has taken yet (for the other site).
    at_jao = old_messages(jao, "test.for-arc", ("done", "failed", None))
    at_arc = old_messages(arc, "test.for-jao", ("done", "failed", None))
    everything = set(at_jao.values()) | set(at_arc.values())
    for host in (jao, arc):
        wait_for(lambda: set(messages(host)) == everything, what=f"every message at {host.name}")

    # Only JAO applies a retention (of 4 s: the messages are an hour old).
    jao.start("replicated-cache.py", "--host", jao.ip, "-p", jao.cache_port,
              env={"DRAWS_MSGQ_RETENTION": "4s"})
    handled = {at_jao["done"], at_arc["done"]}
    for host in (jao, arc):
        wait_for(lambda: not handled & set(messages(host)), timeout=90,
                 what=f"the handled messages deleted at {host.name}")

    # A replication from the ARC after the purge brings nothing back at JAO.
    barrier = Bus(arc.server, actor="test").send("test.barrier", {})[0]
    wait_for(lambda: jao.server.db(tables.MSGQ).get_or_none(barrier), what="the barrier at JAO")
    for host in (jao, arc):
        kept = messages(host)
        assert set(kept) == everything - handled | {barrier}, host.name
        for ids in (at_jao, at_arc):
            assert kept[ids[None]]["consumed"] is False and "status" not in kept[ids[None]]
            assert kept[ids["failed"]]["status"] == "failed"
    assert "deleted 2 handled message(s)" in jao.actors.started[-1].log()
