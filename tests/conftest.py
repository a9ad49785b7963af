"""Shared fixtures: a real server for the session (PouchDB Server, or Apache
CouchDB with DRAWS_TEST_SERVER=couchdb), clean tables per test."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from draws import tables  # noqa: E402
from draws.actors.cleaner import clear_all  # noqa: E402
from draws.couch import Server  # noqa: E402
from support import RELEASE, SERVER_NAME, Actors, release_missing, server_url, site_env, start_server  # noqa: E402


def pytest_report_header(config):
    return f"DRAWS test server: {SERVER_NAME}" + (f" from {RELEASE}" if RELEASE else "")


@pytest.fixture(scope="session", autouse=True)
def chosen_server_at_hand():
    """Every test skipped, with one line in the summary (-ra), when the chosen
    Apache CouchDB release is not there."""
    reason = release_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def couch_url(tmp_path_factory):
    """A fresh server of the chosen kind on a free port, for the whole session."""
    url = server_url()
    data = tmp_path_factory.mktemp("couchdb")
    proc = start_server(url, data, log_file=data / "server.log")
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
    if rep.skipped and call.excinfo and release_missing():
        # Said where it is decided (not at each test): one line in the summary.
        line = next(e.lineno for e in call.excinfo.traceback if str(e.path) == __file__)
        rep.longrepr = (__file__, line, f"Skipped: {release_missing()}")
