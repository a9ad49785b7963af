"""ObsUnitSets: UIDs, the life cycle, recipes and the status table (spec §1, §2)."""

import re

from . import tables
from .recent import Recent
from .timestamps import timestamp
from .exceptions import InvalidRequest, NotFound

STATES = ("FullyObserved", "ReadyForProcessing", "Processing", "ProcessingProblem",
          "ReadyForReview", "Reviewing", "Verified", "DeliveryInProgress", "Delivered")

PIPELINE_RECIPES = ("PipelineCalibration", "PipelineImaging", "PipelineSingleDish",
                    "PipelineCombination", "PipelineCalAndImg")
MANUAL_RECIPE = "ManualCalibration"
RECIPES = PIPELINE_RECIPES + (MANUAL_RECIPE,)

INGESTION_SUBSTATES = ("IngestionTriggered", "AnalyzingProducts", "IngestingProducts",
                       "ProductsIngested")

EXECUTIVE_FLAG = "PL_PROCESSING_EXECUTIVE"

# Allowed transitions, enforced only by `xtss.py --strict` (spec §1).
TRANSITIONS = {
    "FullyObserved": {"ReadyForProcessing"},
    "ReadyForProcessing": {"Processing"},
    "Processing": {"ProcessingProblem", "ReadyForReview"},
    "ProcessingProblem": {"ReadyForProcessing"},
    "ReadyForReview": {"Reviewing"},
    "Reviewing": {"ReadyForProcessing", "Verified", "ReadyForReview"},
    "Verified": {"DeliveryInProgress"},
    "DeliveryInProgress": {"Delivered"},
    "Delivered": set(),
}

UID_RE = re.compile(r"^uid://[A-Za-z0-9]{1,32}/[A-Za-z0-9]{1,32}/[A-Za-z0-9]{1,32}$")
PROGID_RE = re.compile(r"^[0-9]{4}\.[0-9A-Za-z]{1,2}\.[0-9]{5}\.[A-Z]{1,4}$")
# A recipe, an ingestion substate or a word like them: never markup, never huge.
SUBSTATE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def check_uid(uid):
    if not isinstance(uid, str) or not UID_RE.match(uid):
        raise InvalidRequest(f"{show(uid)} is not an OUS UID (expected uid://X1/X2/X3)")
    return uid


def check_progid(progid):
    if not isinstance(progid, str) or not PROGID_RE.match(progid):
        raise InvalidRequest(f"{show(progid)} is not a program id (expected e.g. 2015.1.00657.S)")
    return progid


def check_state(state):
    if state not in STATES:
        raise InvalidRequest(f"{show(state)} is not a state (one of {', '.join(STATES)})")
    return state


def show(value):
    """VALUE as an error message quotes it: repr, cut to 80 characters (inputs may be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def encode_uid(uid):
    """uid://X1/X1/Xb0 -> uid___X1_X1_Xb0 (the document id)."""
    return uid.replace(":", "_").replace("/", "_")


def file_uid(uid):
    """uid://X1/X1/Xb0 -> X1-X1-Xb0 (as it appears in product file names)."""
    return uid[len("uid://"):].replace("/", "-") if uid.startswith("uid://") else uid.replace("/", "-")


def is_pipeline_recipe(substate):
    return substate in PIPELINE_RECIPES


class StatusTable:
    """The status-entities table: one document per OUS."""

    def __init__(self, server):
        self.db = server.db(tables.STATUS)
        self.recent = Recent()   # XTSS changes an OUS many times in a row: no read each time

    def get(self, uid):
        """The OUS document; NotFound, or InvalidRequest if it is refused (malformed)."""
        try:
            return _checked(self.db.get(encode_uid(check_uid(uid))), uid)
        except NotFound:
            raise NotFound(f"no OUS {uid}", 404) from None

    def get_or_none(self, uid):
        try:
            return self.get(uid)
        except NotFound:
            return None

    def reset(self, progid, uid, recipe=None):
        """Create the OUS, or reset it, in ReadyForProcessing with RECIPE as substate."""
        check_progid(progid)
        check_uid(uid)
        if recipe is not None and recipe not in RECIPES:
            raise InvalidRequest(f"{show(recipe)} is not a recipe (one of {', '.join(RECIPES)})")

        def change(doc):
            if _shapes().reason(tables.STATUS, doc):   # a malformed document there: start afresh
                for name in set(doc) - {"_id", "_rev"}:
                    del doc[name]
            doc.update(entityId=uid, progID=progid, flags={})
            _record(doc, "ReadyForProcessing", recipe)
        return self.db.update(encode_uid(uid), change, create=lambda: {"history": []},
                              recent=self.recent)

    def _change(self, uid, edit):
        check_uid(uid)
        try:
            return self.db.update(encode_uid(uid), lambda doc: edit(_checked(doc, uid)), recent=self.recent)
        except NotFound:
            raise NotFound(f"no OUS {uid}", 404) from None

    def set_state(self, uid, state, strict=False):
        check_state(state)

        def edit(doc):
            if strict and state not in TRANSITIONS.get(doc.get("state"), ()):
                raise InvalidRequest(f"{uid}: {doc.get('state')} -> {state} is not a life-cycle transition")
            # Delivered ends the ingestion substates (spec §1).
            _record(doc, state, None if state == "Delivered" else doc.get("substate"))
        return self._change(uid, edit)

    def set_substate(self, uid, substate):
        if substate is not None and not isinstance(substate, str):
            raise InvalidRequest(f"a substate is a string or null, not {show(substate)}")
        if substate and not SUBSTATE_RE.match(substate):
            raise InvalidRequest(f"{show(substate)} is not a substate (a recipe or an ingestion step)")
        return self._change(uid, lambda doc: _record(doc, doc.get("state"), substate))

    def set_flag(self, uid, name, value):
        def edit(doc):
            doc.setdefault("flags", {})[name] = value
            doc["timestamp"] = timestamp()
        return self._change(uid, edit)

    def clear_flag(self, uid, name):
        def edit(doc):
            doc.setdefault("flags", {}).pop(name, None)
            doc["timestamp"] = timestamp()
        return self._change(uid, edit)

    def find(self, state, substate=".*"):
        """OUSs in STATE whose substate matches the regex SUBSTATE (null counts as ""), by UID."""
        check_state(state)
        try:
            pattern = re.compile(substate or "")
        except (re.error, TypeError) as exc:
            raise InvalidRequest(f"invalid substate pattern {show(substate)}: {exc}") from None
        # Look at each state again: under concurrent writes PouchDB Server's index
        # returns documents that have left STATE (measured: 208 of 509).
        docs = _shapes().well_formed(tables.STATUS, self.db.find({"state": state}))
        docs = [d for d in docs if d.get("state") == state and pattern.search(d.get("substate") or "")]
        return sorted(docs, key=lambda d: d.get("entityId", ""))

    def all(self):
        return [d for d in self.db.find({"entityId": {"$gt": None}})]


def _shapes():
    # Imported when first needed: draws.shapes checks OUS documents with this module's rules.
    from . import shapes
    return shapes


def _checked(doc, uid):
    """DOC, the status document of UID, unless it is refused (InvalidRequest saying why)."""
    why = _shapes().check(tables.STATUS, doc)
    if why:
        raise InvalidRequest(f"the status document of {uid} is refused: {why}")
    return doc


def _record(doc, state, substate):
    now = timestamp()
    doc.update(state=state, substate=substate, timestamp=now)
    doc.setdefault("history", []).append({"state": state, "substate": substate, "timestamp": now})
