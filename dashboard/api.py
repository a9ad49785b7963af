"""The JSON API: the same data as the pages, for scripts."""

from flask import Blueprint, jsonify, request

from .reading import bookmarks, cache_base, check_state, hub, ous_doc_id, read, views

bp = Blueprint("api", __name__, url_prefix="/api")


def answer(view):
    data, error = read(view)
    if error:
        return jsonify(error=error, couchdb=hub().health()), 503
    if data is None:
        return jsonify(error="not found"), 404
    return jsonify(data)


@bp.get("")
def index():
    return jsonify(endpoints={
        "/api/overview": "OUS counts per state, newest OUSs per state, newest rows of every table",
        "/api/state/<state>?older=B": "the OUSs in one state, newest first, a page at a time "
                                      "(B: a page's \"older\" or \"newer\" bookmark, as JSON; ?newer=B too)",
        "/api/search?q=uid://A001/X12": "the OUSs whose UID starts so (at most 50)",
        "/api/ous/<uid or its document id>": "one OUS: history timeline, decoded report, products and NGAS",
        "/api/bus": "messages: unconsumed by selector, failed with their reason, in progress, recent",
        "/api/refused": "documents refused for their shape: counts per table and the first ones, with why",
        "/api/health": "whether CouchDB answers",
        "/events": "server-sent events: 'change' (tables changed) and 'couch' (up or down)"})


@bp.get("/overview")
def overview():
    return answer(views().overview)


@bp.get("/state/<state>")
def state(state):
    check_state(state)
    return answer(lambda: views().state(state, **bookmarks()))


@bp.get("/ous/<path:ref>", merge_slashes=False)   # uid://X1/X1/Xb3 as well as uid___X1_X1_Xb3
def ous(ref):
    doc_id = ous_doc_id(ref)
    return answer(lambda: views().ous(doc_id, cache_base()))


@bp.get("/search")
def search():
    return answer(lambda: views().search(request.args.get("q", "")))


@bp.get("/bus")
def bus():
    return answer(views().bus)


@bp.get("/refused")
def refused():
    return answer(views().refused)


@bp.get("/health")
def health():
    live = hub()
    up = live.server.up()
    if up:
        live.report_up()
    else:
        live.report_down(f"CouchDB at {live.server.url} does not answer")
    return jsonify(live.health()), 200 if up else 503
