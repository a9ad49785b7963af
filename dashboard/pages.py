"""The dashboard's pages: the overview, one state, one OUS and the message bus."""

from flask import Blueprint, abort, redirect, render_template, request, url_for

from draws import tables
from draws.ous import STATES

from .reading import bookmarks, cache_base, check_state, hub, ous_doc_id, read, views
from .views import uid_prefix

bp = Blueprint("pages", __name__)

# The tables each page shows: a change in one of them makes the page re-read.
OUS_TABLES = (tables.STATUS, tables.REPORTS, tables.DELIVERY, tables.NGAS, tables.METADATA)


def page(template, view, watched, title, **context):
    return render(template, *read(view), watched, title, **context)


def render(template, data, error, watched, title, **context):
    if error:
        return render_template("down.html", error=error, title=title, watched=" ".join(watched),
                               health=hub().health()), 503
    if data is None:
        abort(404)
    return render_template(template, data=data, title=title, watched=" ".join(watched),
                           health=hub().health(), **context)


@bp.get("/")
def overview():
    return page("overview.html", views().overview, tables.ALL, "Overview", states=STATES)


@bp.get("/state/<state>")
def state(state):
    check_state(state)
    return page("state.html", lambda: views().state(state, **bookmarks()), [tables.STATUS], state)


@bp.get("/ous/<path:ref>", merge_slashes=False)   # uid://X1/X1/Xb3 as well as uid___X1_X1_Xb3
def ous(ref):
    doc_id = ous_doc_id(ref)
    return page("ous.html", lambda: views().ous(doc_id, cache_base()), OUS_TABLES, doc_id)


@bp.get("/bus")
def bus():
    return page("bus.html", views().bus, [tables.MSGQ], "Message bus")


@bp.get("/refused")
def refused():
    # Not live: each change would read the tables again; a reload shows the latest.
    return page("refused.html", views().refused, [], "Refused documents")


@bp.get("/search")
def search():
    """OUSs by (the start of) their UID; the one named exactly opens its page."""
    text = request.args.get("q", "")
    data, error = read(lambda: views().search(text))
    exact = [o for o in data["ouss"] if o["id"] == uid_prefix(text)] if data else []
    if exact:
        return redirect(url_for("pages.ous", ref=exact[0]["id"]))
    return render("search.html", data, error, [tables.STATUS], "Find an OUS")
