"""The dashboard's Flask app: pages, their JSON API and the live event stream."""

import logging

from flask import Flask, Response, abort, jsonify, render_template, request

from draws.couch import Server
from draws.exceptions import CouchError, Unavailable
from draws.ous import STATES

from . import filters
from .live import Hub
from .views import Views

log = logging.getLogger("draws.dashboard")

CACHE_PORT = 8000   # where a site's cache HTTP server listens (spec §6)

# Content-Security-Policy: our own script and styles only, so even a
# mistake in escaping could not run a script that came with the data.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(couch_url, cache_url=None, live=True, max_wait=1.0):
    """The dashboard for the CouchDB at COUCH_URL.

    CACHE_URL is the local cache's HTTP server (weblog links); by default the
    host the browser asked for, on port 8000. LIVE follows the changes feeds
    (and pushes them to browsers); MAX_WAIT bounds how long a page waits for
    an unreachable CouchDB before saying so.
    """
    app = Flask(__name__)
    server = Server(couch_url, timeout=10, max_wait=max_wait)
    hub = Hub(server)
    if live:
        hub.start()
    views = Views(server, hub if live else None)
    app.extensions["draws-dashboard"] = hub
    filters.register(app)

    def cache_base():
        return (cache_url or f"{request.scheme}://{request.host.rsplit(':', 1)[0]}:{CACHE_PORT}").rstrip("/")

    def read(view):
        """(data, None) or (None, why CouchDB could not give it)."""
        try:
            data = view()
        except Unavailable as exc:
            hub.report_down(exc)
            return None, str(exc)
        except CouchError as exc:
            log.warning("CouchDB error: %s", exc)
            return None, f"CouchDB answered with an error: {exc}"
        hub.report_up()
        return data, None

    def page(template, view, watched, title, **context):
        data, error = read(view)
        if error:
            return render_template("down.html", error=error, title=title, watched=watched,
                                   health=hub.health()), 503
        if data is None:
            abort(404)
        return render_template(template, data=data, title=title, watched=watched,
                               health=hub.health(), **context)

    def api(view):
        data, error = read(view)
        if error:
            return jsonify(error=error, couchdb=hub.health()), 503
        if data is None:
            return jsonify(error="not found"), 404
        return jsonify(data)

    def check_state(state):
        if state not in STATES:
            abort(404)
        return state

    def page_number():
        try:
            return int(request.args.get("page", 1))
        except ValueError:
            return 1

    all_tables = "msgq status-entities pipeline-reports delivery-status ngas products-metadata"

    # -- pages
    @app.get("/")
    def overview():
        return page("overview.html", views.overview, all_tables, "Overview", states=STATES)

    @app.get("/state/<state>")
    def state(state):
        check_state(state)
        return page("state.html", lambda: views.state(state, page_number()), "status-entities", state)

    @app.get("/ous/<doc_id>")
    def ous(doc_id):
        return page("ous.html", lambda: views.ous(doc_id, cache_base()),
                    "status-entities pipeline-reports delivery-status ngas products-metadata", doc_id)

    @app.get("/bus")
    def bus():
        return page("bus.html", views.bus, "msgq", "Message bus")

    # -- the JSON API: the same data as the pages
    @app.get("/api")
    def api_index():
        return jsonify(endpoints={
            "/api/overview": "OUS counts per state, newest OUSs per state, newest rows of every table",
            "/api/state/<state>?page=N": "the OUSs in one state, newest first, paged",
            "/api/ous/<encoded uid>": "one OUS: history timeline, decoded report, products and NGAS",
            "/api/bus": "messages: unconsumed by selector, failed with their reason, in progress, recent",
            "/api/health": "whether CouchDB answers",
            "/events": "server-sent events: 'change' (tables changed) and 'couch' (up or down)"})

    @app.get("/api/overview")
    def api_overview():
        return api(views.overview)

    @app.get("/api/state/<state>")
    def api_state(state):
        check_state(state)
        return api(lambda: views.state(state, page_number()))

    @app.get("/api/ous/<doc_id>")
    def api_ous(doc_id):
        return api(lambda: views.ous(doc_id, cache_base()))

    @app.get("/api/bus")
    def api_bus():
        return api(views.bus)

    @app.get("/api/health")
    def api_health():
        up = server.up()
        if up:
            hub.report_up()
        else:
            hub.report_down(f"CouchDB at {server.url} does not answer")
        return jsonify(hub.health()), 200 if up else 503

    @app.get("/events")
    def events():
        return Response(hub.stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.after_request
    def headers(resp):
        resp.headers.update(SECURITY_HEADERS)
        if request.path.startswith(("/api", "/ous", "/state", "/bus")) or request.path == "/":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    return app
