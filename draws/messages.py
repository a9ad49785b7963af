"""Every message of spec §3: its selector, its fields, its builder and its check.

To change a message, change it here. A builder returns ``(selector, body)``,
ready for ``bus.send(*...)`` or ``bus.send_all([...])``. A check takes a
received body and returns its fields, or raises InvalidRequest saying what
is wrong: bodies come from other processes, and from the original's actors.
"""

import base64
import binascii

from .config import LOCATIONS
from .exceptions import InvalidRequest
from .ous import PIPELINE_RECIPES, check_progid, check_uid, show
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
OPERATIONS = ("set-state", "set-substate", "set-exec", "clear-exec", FIND)


def xtss_set(operation, uid, value=None):
    """A set-state, set-substate, set-exec or clear-exec request (VALUE ignored by clear-exec)."""
    return XTSS_SELECTOR, {"operation": operation, "ousUID": uid, "value": value}


def xtss_find(state, substate=".*"):
    """A get-ouss-by-state-substate request (SUBSTATE a regular expression)."""
    return XTSS_SELECTOR, {"operation": FIND, "state": state, "substate": substate}


def check_xtss(body):
    """(operation, ousUID, value) of a set request; (operation, state, substate) of a find."""
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
    uid = field("ousUID")
    value = field("value") if operation != "clear-exec" else None
    if operation == "set-exec" and value not in LOCATIONS:
        raise InvalidRequest(f"set-exec needs an executive name ({', '.join(LOCATIONS)}), "
                             f"not {show(value)}")
    return operation, uid, value


# -- pipeline.process.<LOC>: DRA (or the launcher) asks LOC's Torque/Maui to run the Pipeline.

def process_selector(location):
    return f"pipeline.process.{location}"


def process(location, progid, uid, recipe):
    return process_selector(location), {"progID": progid, "ousUID": uid, "recipe": recipe}


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


def report(uid, run_timestamp, source, xml, products_dir):
    """The report message of one Pipeline run (XML: the report's bytes)."""
    return REPORT_SELECTOR, {"ousUID": uid, "timestamp": run_timestamp, "source": source,
                             "report": base64.b64encode(xml).decode(), "productsDir": products_dir}


def check_report(body):
    """The body, once each of its fields is checked."""
    fields(body, "a Pipeline report message", "ousUID", "timestamp", "source", "report", "productsDir")
    check_uid(body["ousUID"])
    check_timestamp(body["timestamp"])
    check_name(body["productsDir"])
    if body["source"] not in LOCATIONS:
        raise InvalidRequest(f"source {show(body['source'])} is not a location (one of {', '.join(LOCATIONS)})")
    try:
        base64.b64decode(body["report"], validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise InvalidRequest("report is not base64 text") from None
    return body


# -- ingest.JAO: AQUA/QA2 asks the Product Ingestor to archive a verified OUS's products.

INGEST_SELECTOR = "ingest.JAO"


def ingest(uid, run_timestamp, products_dir):
    return INGEST_SELECTOR, {"ousUID": uid, "timestamp": run_timestamp, "productsDir": products_dir}


def check_ingest(body):
    """(ousUID, timestamp, productsDir) of an ingest.JAO body."""
    uid, ts, products_dir = fields(body, "an ingest message", "ousUID", "timestamp", "productsDir")
    return check_uid(uid), check_timestamp(ts), check_name(products_dir)
