"""Start-up on a server without the DRAWS tables: everything started at the same instant.

A service manager starts a site's actors together; each creates the tables
and indexes it finds missing. On Apache CouchDB the losers of those races
are answered 500 (``error_saving_ddoc``, ``conflict``), not only 409/412.
"""

import multiprocessing
import time

from draws import tables
from draws.couch import Server
from draws.exceptions import NotFound
from support import Actors, wait_for
from test_faults import RECIPE, Fleet
from test_lifecycle import PROG

ROUNDS = 10


def drop_tables(server):
    for name in tables.ALL:
        try:
            server.request("DELETE", name)
        except NotFound:
            pass


def assert_tables_complete(server):
    assert set(tables.ALL) <= set(server.all_dbs())
    for name, indexes in tables.INDEXES.items():
        assert set(indexes) <= server.db(name).index_names(), name


def _ensure_at(url, barrier):
    barrier.wait()
    tables.ensure(Server(url, max_wait=30))


def test_eight_processes_create_the_tables_at_the_same_instant(couch_url):
    server = Server(couch_url, max_wait=30)
    ctx = multiprocessing.get_context("fork")   # quick to start: they all import nothing more
    for _ in range(ROUNDS):
        drop_tables(server)
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_ensure_at, args=(couch_url, barrier)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 8
        assert_tables_complete(server)


def test_a_whole_site_started_at_once_on_a_server_without_tables_delivers(couch_url, env, tmp_path):
    server = Server(couch_url, max_wait=30)
    for n in range(ROUNDS):
        drop_tables(server)
        group = Actors(env, tmp_path / f"round-{n}")
        group.log_dir.mkdir()
        try:
            started = time.monotonic()
            fleet = Fleet(group, env, server)   # every actor, one right after the other
            uid = f"uid://X1/X1/Xu{n}"
            res = group.run("launcher.py", PROG, uid, RECIPE)
            assert res.returncode == 0, res.stderr
            fleet.wait_delivered([uid], timeout=120)
            # A start-up failure kills an actor within seconds; give it 15.
            time.sleep(max(0.0, started + 15 - time.monotonic()))
            dead = [name for name, actor in fleet.procs.items() if not actor.alive()]
            assert not dead, f"round {n}: {dead} died"
            assert_tables_complete(server)
            wait_for(lambda: not fleet.messages(consumed=False), what="every message handled")
        except BaseException:
            print(group.logs())
            raise
        finally:
            group.stop_all()
