"""What the pages and the JSON API share: reading a view for the current request.

A view that CouchDB cannot answer becomes (None, the reason) here, once, so
both blueprints say the same thing when CouchDB is down.
"""

import json
import logging

from flask import abort, current_app, request

from draws.exceptions import CouchError, Unavailable
from draws.ous import STATES

from .views import uid_prefix

log = logging.getLogger("draws.dashboard")


def views():
    return current_app.extensions["draws-views"]


def hub():
    return current_app.extensions["draws-dashboard"]


def read(view):
    """(data, None) or (None, why CouchDB could not give it)."""
    try:
        data = view()
    except Unavailable as exc:
        hub().report_down(exc)
        return None, str(exc)
    except CouchError as exc:
        log.warning("CouchDB error: %s", exc)
        return None, f"CouchDB answered with an error: {exc}"
    hub().report_up()
    return data, None


def check_state(state):
    if state not in STATES:
        abort(404)
    return state


def bookmarks():
    """{"older": [timestamp, id]} or {"newer": ...}: where the page asked for starts (see Views.state)."""
    found = {}
    for way in ("older", "newer"):
        if way in request.args:
            try:
                mark = json.loads(request.args[way])
            except ValueError:
                mark = None
            if not (isinstance(mark, list) and len(mark) == 2 and isinstance(mark[1], str)):
                abort(400, description=f"{way} must be a page's bookmark: [timestamp, id] as JSON")
            found[way] = mark
    if len(found) > 1:
        abort(400, description="a page is older or newer than a bookmark, not both")
    return found


def cache_base():
    """The local cache's HTTP server: as configured, or the host the browser asked for."""
    url = current_app.config["CACHE_URL"] or \
        f"{request.scheme}://{request.host.rsplit(':', 1)[0]}:{current_app.config['CACHE_PORT']}"
    return url.rstrip("/")


def ous_doc_id(ref):
    """The status document id of an OUS named by REF: its id, or its UID as people write it."""
    return uid_prefix(ref) if ref.startswith("uid:") else ref
