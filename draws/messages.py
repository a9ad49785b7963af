"""Every message of spec §3: its selector, its fields, its builder and its check.

To change a message, change it here. A builder returns ``(selector, body)``,
ready for ``bus.send(*...)`` or ``bus.send_all([...])``. A check takes a
received body and returns its fields, or raises InvalidRequest saying what
is wrong: bodies come from other processes, and from the original's actors.
"""

import base64
import binascii
import re

from .bus import SELECTOR_RE
from .config import LOCATIONS
from .exceptions import InvalidRequest
from .ous import PIPELINE_RECIPES, check_progid, check_state, check_substate, check_uid, show
from .products import check_name, check_timestamp


def fields(body, what, *names):
    """The NAMES fields of a message BODY (WHAT it is, for errors); InvalidRequest if not there."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"{what} is a JSON object, not {type(body).__name__}")
    missing = [name for name in names if name not in body]
    if missing:
        raise InvalidRequest(f"{what} needs {', '.join(missing)}")
    return tuple(body[name] for name in names)


# -- xtss: a request to XTSS (RPC). The reply: 201 for a set, the OUS
# documents for a find, {"error": reason} for a request it cannot serve.

XTSS_SELECTOR = "xtss"
OK = 201
FIND = "get-ouss-by-state-substate"
# Beyond the original's five (which keep working, spec §9): a guarded step of
# the life cycle, and a reviewer's sign of life.
TRANSITION, RENEW = "transition", "renew"
OPERATIONS = ("set-state", "set-substate", "set-exec", "clear-exec", FIND, TRANSITION, RENEW)
REFUSED = "refused"   # the reply's field when a guarded step finds the OUS elsewhere
STEP_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,120}$")


def xtss_set(operation, uid, value=None, reason=None):
    """A set-state, set-substate, set-exec or clear-exec request (VALUE ignored by clear-exec).
    REASON (beyond the original: a sentence saying why) goes with a set-state."""
    body = {"operation": operation, "ousUID": uid, "value": value}
    if reason:
        body["reason"] = reason
    return XTSS_SELECTOR, body


def xtss_find(state, substate=".*"):
    """A get-ouss-by-state-substate request (SUBSTATE a regular expression)."""
    return XTSS_SELECTOR, {"operation": FIND, "state": state, "substate": substate}


def xtss_transition(uid, step, by, expect, to=None, **more):
    """A guarded step (see check_transition): from a state in EXPECT to TO (None: stay)."""
    body = {"operation": TRANSITION, "ousUID": uid, "step": step, "by": by, "from": list(expect), "to": to}
    body.update(more)
    return XTSS_SELECTOR, body


def xtss_renew(uid, step, lease):
    """A reviewer's sign of life: its review (started by STEP) holds the OUS LEASE s more."""
    return XTSS_SELECTOR, {"operation": RENEW, "ousUID": uid, "step": step, "lease": lease}


def check_xtss(body):
    """(operation, ousUID, value) of a set request; (operation, state, substate) of a find;
    (operation, ousUID, the checked fields) of a transition or a renew."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"an XTSS request is a JSON object, not {type(body).__name__}")
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise InvalidRequest(f"unknown operation {operation!r} (one of {', '.join(OPERATIONS)})")

    def field(name):
        if name not in body:
            raise InvalidRequest(f"{operation} needs the field {name!r}")
        return body[name]

    if operation == FIND:
        return operation, field("state"), body.get("substate", ".*")
    if operation == TRANSITION:
        return operation, check_uid(field("ousUID")), check_transition(body)
    if operation == RENEW:
        return operation, check_uid(field("ousUID")), (_step(field("step")), _lease(field("lease")))
    uid = field("ousUID")
    value = field("value") if operation != "clear-exec" else None
    if operation == "set-exec" and value not in LOCATIONS:
        raise InvalidRequest(f"set-exec needs an executive name ({', '.join(LOCATIONS)}), "
                             f"not {show(value)}")
    return operation, uid, value


def _step(value, name="step"):
    if not isinstance(value, str) or not STEP_RE.match(value):
        raise InvalidRequest(f"{name} must be a word of letters, digits and _ . : @ -, not {show(value)}")
    return value


def _states(value, name):
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"{name} must be a non-empty list of states, not {show(value)}")
    return [check_state(s) for s in value]


def _lease(value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 1 <= value <= 3600:
        raise InvalidRequest(f"lease must be 1 to 3600 seconds, not {show(value)}")
    return float(value)


def _outgoing(pair):
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            and SELECTOR_RE.match(pair[0]) and not pair[0].endswith("*")):
        raise InvalidRequest(f"a message to send is [selector, body], not {show(pair)}")
    return pair


def check_transition(body):
    """The fields of a guarded step, checked: ``step`` (its id: asked again, it is done
    once), ``by`` (who asks), ``from`` (the states it starts from), ``to`` (the new
    state, or null to stay), and optionally ``substate`` (set it), ``fromSubstate``,
    ``assignment`` and ``owner`` (further guards), ``assign`` (an executive: a new
    assignment, its id the step's), ``clearExec``, ``through`` (states passed on
    the way, in the history), ``messages`` (``[selector, body]`` pairs sent with
    the step), ``reason`` and ``lease`` (seconds a reviewer holds the OUS)."""
    t = {"step": _step(body.get("step")), "from": _states(body.get("from"), "from")}
    by = body.get("by")
    if by is not None and (not isinstance(by, str) or len(by) > 200):
        raise InvalidRequest(f"by is who asks (at most 200 characters), not {show(by)}")
    t["by"] = by
    if body.get("to") is not None:
        t["to"] = check_state(body["to"])
    if "substate" in body:
        t["substate"] = check_substate(body["substate"])
    if "fromSubstate" in body:
        t["fromSubstate"] = [check_substate(s) for s in body["fromSubstate"] or [None]]
    for name in ("assignment", "owner"):
        if body.get(name) is not None:
            t[name] = _step(body[name], name)
    if body.get("assign") is not None:
        if body["assign"] not in LOCATIONS:
            raise InvalidRequest(f"assign needs an executive ({', '.join(LOCATIONS)}), not {show(body['assign'])}")
        t["assign"] = body["assign"]
    t["clearExec"] = bool(body.get("clearExec"))
    t["through"] = _states(body["through"], "through") if body.get("through") else []
    t["messages"] = [_outgoing(m) for m in body.get("messages") or []]
    if body.get("reason") is not None:
        if not isinstance(body["reason"], str):
            raise InvalidRequest(f"reason is text, not {show(body['reason'])}")
        t["reason"] = body["reason"][:2000]
    if body.get("lease") is not None:
        t["lease"] = _lease(body["lease"])
    return t


# -- pipeline.process.<LOC>: DRA (or the launcher) asks LOC's Torque/Maui to run the Pipeline.

def process_selector(location):
    return f"pipeline.process.{location}"


def process(location, progid, uid, recipe, assignment=None):
    """ASSIGNMENT (beyond the original's body): the id of the assignment the run belongs to."""
    return process_selector(location), _with_assignment(
        {"progID": progid, "ousUID": uid, "recipe": recipe}, assignment)


def _with_assignment(body, assignment):
    if assignment is not None:
        body["assignment"] = assignment
    return body


def assignment_of(body):
    """The assignment id a pipeline.process, report or ingest body carries, or None
    (the original's actors send none)."""
    value = body.get("assignment") if isinstance(body, dict) else None
    return None if value is None else _step(value, "assignment")


def check_process_fields(progid, uid, recipe):
    """InvalidRequest unless all three are well formed (the Pipeline Driver's arguments too)."""
    check_progid(progid)
    check_uid(uid)
    if recipe not in PIPELINE_RECIPES:
        raise InvalidRequest(f"{show(recipe)} is not a Pipeline recipe (one of {', '.join(PIPELINE_RECIPES)})")


def check_process(body):
    """(progID, ousUID, recipe) of a well-formed request body."""
    values = fields(body, "a Pipeline request", "progID", "ousUID", "recipe")
    check_process_fields(*values)
    return values


# -- cached.<LOC>: the Pipeline Driver tells LOC's cache replicator a file is cached at a site.

FILE_TYPES = ("productsdir", "weblog")


def cached_selector(location):
    return f"cached.{location}"


def cached(location, file_type, cached_at, name):
    return cached_selector(location), {"fileType": file_type, "cachedAt": cached_at, "name": name}


def check_cached(body):
    """(fileType, cachedAt, name) of a well-formed ``cached.*`` body."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"a cached.* message is a JSON object, not {type(body).__name__}")
    file_type, cached_at, name = body.get("fileType"), body.get("cachedAt"), body.get("name")
    if file_type not in FILE_TYPES:
        raise InvalidRequest(f"fileType must be one of {', '.join(FILE_TYPES)}, not {show(file_type)}")
    if cached_at not in LOCATIONS:
        raise InvalidRequest(f"cachedAt must be one of {', '.join(LOCATIONS)}, not {show(cached_at)}")
    check_name(name)
    if file_type == "weblog" and not name.endswith(".zip"):
        raise InvalidRequest(f"a weblog is a .zip file, not {name!r}")
    return file_type, cached_at, name


# -- pipeline.report.JAO: the Pipeline Driver sends a run's report to AQUA/QA2.

REPORT_SELECTOR = "pipeline.report.JAO"


def report(uid, run_timestamp, source, xml, products_dir, assignment=None):
    """The report message of one Pipeline run (XML: the report's bytes)."""
    return REPORT_SELECTOR, _with_assignment(
        {"ousUID": uid, "timestamp": run_timestamp, "source": source,
         "report": base64.b64encode(xml).decode(), "productsDir": products_dir}, assignment)


def check_report(body, site_of_cache=lambda path: None):
    """The body, once each of its fields is checked.

    The original's Pipeline Driver names its site by its cache's path
    (spec §9): SITE_OF_CACHE(path) gives the site, which replaces it.
    """
    fields(body, "a Pipeline report message", "ousUID", "timestamp", "source", "report", "productsDir")
    check_uid(body["ousUID"])
    check_timestamp(body["timestamp"])
    check_name(body["productsDir"])
    source = body["source"]
    if source not in LOCATIONS:
        site = site_of_cache(source) if isinstance(source, str) and source else None
        if site is None:
            raise InvalidRequest(f"source {show(source)} is not a location (one of "
                                 f"{', '.join(LOCATIONS)}) nor the cache of one (DRAWS_<LOCATION>_CACHE)")
        body = dict(body, source=site)
    try:
        base64.b64decode(body["report"], validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise InvalidRequest("report is not base64 text") from None
    return body


# -- ingest.JAO: AQUA/QA2 asks the Product Ingestor to archive a verified OUS's products.

INGEST_SELECTOR = "ingest.JAO"


def ingest(uid, run_timestamp, products_dir, assignment=None):
    return INGEST_SELECTOR, _with_assignment(
        {"ousUID": uid, "timestamp": run_timestamp, "productsDir": products_dir}, assignment)


def check_ingest(body):
    """(ousUID, timestamp, productsDir) of an ingest.JAO body."""
    uid, ts, products_dir = fields(body, "an ingest message", "ousUID", "timestamp", "productsDir")
    return check_uid(uid), check_timestamp(ts), check_name(products_dir)
