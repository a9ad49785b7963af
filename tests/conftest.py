"""Shared fixtures: a real PouchDB Server for the session, clean tables per test."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from draws import server as embedded, tables  # noqa: E402
from draws.actors.cleaner import clear_all  # noqa: E402
from draws.couch import Server  # noqa: E402
from support import Actors, free_port, site_env  # noqa: E402


@pytest.fixture(scope="session")
def couch_url(tmp_path_factory):
    """A fresh in-memory PouchDB Server on a free port, for the whole session."""
    url = f"http://127.0.0.1:{free_port()}"
    data = tmp_path_factory.mktemp("couchdb")
    proc = embedded.spawn(url, data, in_memory=True, log_file=data / "server.log")
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture
def server(couch_url):
    """The session's server with the DRAWS tables created and emptied."""
    srv = Server(couch_url, max_wait=30)
    tables.ensure(srv)
    clear_all(srv)
    return srv


@pytest.fixture
def env(couch_url, tmp_path):
    """Environment for actor subprocesses: one host, JAO and EU caches in tmp_path."""
    return site_env(couch_url, tmp_path)


@pytest.fixture
def actors(env, tmp_path, server, request):
    """Start actor scripts as subprocesses; all are killed when the test ends."""
    group = Actors(env, tmp_path)
    yield group
    group.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(group.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
