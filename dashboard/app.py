"""The dashboard's app factory: its settings, the live hub, the pages and the JSON API."""

import hmac

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import SecurityError

from draws.couch import Server, split_credentials

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
    an unreachable CouchDB before saying so. CONFIG: more app.config keys:
    TRUSTED_HOSTS, the names the browser may ask for in its Host header
    (default: this machine by its loopback names), and LOGIN, the (user,
    password) a browser must give (default: CouchDB's, when its URL has them,
    so the dashboard is no open copy of a closed CouchDB).
    """
    app = Flask(__name__)
    app.config.from_mapping(COUCHDB_URL=couch_url, CACHE_URL=cache_url, LIVE=live, MAX_WAIT=max_wait,
                            CACHE_PORT=8000,   # where a site's cache HTTP server listens (spec §6)
                            TRUSTED_HOSTS=list(LOOPBACK_NAMES), LOGIN=split_credentials(couch_url)[1])
    app.config.from_mapping(config)

    server = Server(app.config["COUCHDB_URL"], timeout=10, max_wait=app.config["MAX_WAIT"])
    hub = Hub(server)
    hub.init_app(app)
    Views(server, hub).init_app(app)
    filters.register(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.before_request(_check_request)
    app.register_error_handler(SecurityError, _unknown_host)
    app.after_request(_headers)
    return app


LOOPBACK_NAMES = ("localhost", "127.0.0.1")   # (Werkzeug matches no IPv6 address)


def _check_request():
    """Refuse a browser without the login (Flask itself refuses a Host not in TRUSTED_HOSTS: 400)."""
    login = current_app.config["LOGIN"]
    if login and not _logged_in(request.authorization, login):
        return Response("The DRAWS dashboard needs the user and password of the CouchDB it reads.\n", 401,
                        {"WWW-Authenticate": 'Basic realm="DRAWS dashboard", charset="UTF-8"'},
                        mimetype="text/plain")
    return None


def _unknown_host(error):
    host = request.environ.get("HTTP_HOST", "")[:200]
    return Response(f"This dashboard does not answer to the name {host!r}: start it with --allowed-host NAME "
                    "for each name browsers reach it by.\n", 400, mimetype="text/plain")


def _logged_in(auth, login):
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), login[0].encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), login[1].encode())
    return user_ok and password_ok


def _headers(resp):
    resp.headers.update(SECURITY_HEADERS)
    if resp.mimetype in ("text/html", "application/json"):
        resp.headers["Cache-Control"] = "no-store"   # always what the tables hold now
    return resp
