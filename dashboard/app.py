"""The dashboard's app factory: its settings, the live hub, the pages and the JSON API."""

from flask import Flask

from draws.couch import Server

from . import api, filters, pages
from .live import Hub
from .views import Views

# Content-Security-Policy: our own script and styles only, so even a
# mistake in escaping could not run a script that came with the data.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(couch_url, cache_url=None, live=True, max_wait=1.0, **config):
    """The dashboard for the CouchDB at COUCH_URL.

    CACHE_URL is the local cache's HTTP server (weblog links); by default the
    host the browser asked for, on port 8000. LIVE follows the changes feeds
    (and pushes them to browsers); MAX_WAIT bounds how long a page waits for
    an unreachable CouchDB before saying so. CONFIG: more app.config keys.
    """
    app = Flask(__name__)
    app.config.from_mapping(COUCHDB_URL=couch_url, CACHE_URL=cache_url, LIVE=live, MAX_WAIT=max_wait,
                            CACHE_PORT=8000)   # where a site's cache HTTP server listens (spec §6)
    app.config.from_mapping(config)

    server = Server(app.config["COUCHDB_URL"], timeout=10, max_wait=app.config["MAX_WAIT"])
    hub = Hub(server)
    hub.init_app(app)
    Views(server, hub).init_app(app)
    filters.register(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.after_request(_headers)
    return app


def _headers(resp):
    resp.headers.update(SECURITY_HEADERS)
    if resp.mimetype in ("text/html", "application/json"):
        resp.headers["Cache-Control"] = "no-store"   # always what the tables hold now
    return resp
