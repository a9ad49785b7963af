"""What the pages and the JSON API share: reading a view for the current request.

A view that CouchDB cannot answer becomes (None, the reason) here, once, so
both blueprints say the same thing when CouchDB is down.
"""

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


def page_number():
    try:
        return int(request.args.get("page", 1))
    except ValueError:
        return 1


def cache_base():
    """The local cache's HTTP server: as configured, or the host the browser asked for."""
    url = current_app.config["CACHE_URL"] or \
        f"{request.scheme}://{request.host.rsplit(':', 1)[0]}:{current_app.config['CACHE_PORT']}"
    return url.rstrip("/")


def ous_doc_id(ref):
    """The status document id of an OUS named by REF: its id, or its UID as people write it."""
    return uid_prefix(ref) if ref.startswith("uid:") else ref
