"""ObsUnitSets: UIDs, the life cycle, recipes and the status table (spec §1, §2)."""

import re
import time

from . import tables
from .recent import Recent
from .timestamps import at, timestamp
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
MAX_REASON = 1000   # characters kept of a reason given for a state

# Mid-life-cycle: something works on the OUS or it waits for a review; the
# launcher resets it only when forced.
MID_LIFE = ("Processing", "ReadyForReview", "Reviewing", "Verified", "DeliveryInProgress")

# The life cycle's transitions (spec §1): `set-state` refuses others unless
# XTSS runs with --lenient.
TRANSITIONS = {
    "FullyObserved": {"ReadyForProcessing"},
    "ReadyForProcessing": {"Processing"},
    "Processing": {"ProcessingProblem", "ReadyForReview"},
    "ProcessingProblem": {"ReadyForProcessing"},
    "ReadyForReview": {"Reviewing"},
    "Reviewing": {"ReadyForProcessing", "Verified", "ReadyForReview"},
    "Verified": {"DeliveryInProgress"},
    # Products that never reach the archive's cache end an ingestion (draws.actors.ingestor).
    "DeliveryInProgress": {"Delivered", "ProcessingProblem"},
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


def check_substate(substate):
    if substate is not None and not isinstance(substate, str):
        raise InvalidRequest(f"a substate is a string or null, not {show(substate)}")
    if substate and not SUBSTATE_RE.match(substate):
        raise InvalidRequest(f"{show(substate)} is not a substate (a recipe or an ingestion step)")
    return substate


class Refused(InvalidRequest):
    """A guarded transition found the OUS elsewhere than it expected: someone else moved it."""


def where(doc):
    """DOC's state as a refusal tells it: 'Processing at EU by dra@host:12 at 2026-...'."""
    executive = (doc.get("flags") or {}).get(EXECUTIVE_FLAG)
    last = (doc.get("history") or [{}])[-1]
    by = f" by {last['by']} at {last.get('timestamp')}" if last.get("by") else ""
    return f"{doc.get('state')}{f' at {executive}' if executive else ''}{by}"


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

    def reset(self, progid, uid, recipe=None, by=None, force=True, assign=None):
        """Create the OUS, or reset it, in ReadyForProcessing with RECIPE as substate.

        Unless FORCE, an OUS mid-life-cycle is Refused. ASSIGN, a guarded
        transition's fields (``step``, ``assign``, ``messages``), assigns it in
        the same write. Returns (document, what it interrupted or None).
        """
        check_progid(progid)
        check_uid(uid)
        if recipe is not None and recipe not in RECIPES:
            raise InvalidRequest(f"{show(recipe)} is not a recipe (one of {', '.join(RECIPES)})")
        interrupted = []

        def change(doc):
            if _shapes().reason(tables.STATUS, doc):   # a malformed document there: start afresh
                for name in set(doc) - {"_id", "_rev"}:
                    del doc[name]
            interrupted.clear()
            if assign and doc.get("step") == assign["step"]:
                return False   # our own write, landed before a retry
            if doc.get("state") in MID_LIFE:
                if not force:
                    raise Refused(f"{uid} is {where(doc)}: not resetting it mid-life-cycle "
                                  "(--force interrupts it)")
                interrupted.append(where(doc))
            for key in ("assignment", "owner", "outbox", "problem", "step"):
                doc.pop(key, None)
            doc.update(entityId=uid, progID=progid, flags={})
            _record(doc, "ReadyForProcessing", recipe, by,
                    f"launched again, interrupting {interrupted[0]}" if interrupted else None)
            if assign:
                _apply(doc, dict(assign, to="Processing", by=by))
        doc = self.db.update(encode_uid(uid), change, create=lambda: {"history": []}, recent=self.recent)
        return doc, (interrupted[0] if interrupted else None)

    def transition(self, uid, t):
        """Guarded transition T of UID (fields: see messages.check_transition), in one
        update on the revision read: Refused when the OUS is not where T expects it; a
        step already done (T's ``step`` is the document's, or in its history by T's asker:
        a request asked again once the OUS moved on) changes nothing. T's
        ``messages`` (documents, ids fixed) become the OUS's outbox. Returns the document."""
        def edit(doc):
            if doc.get("step") == t["step"] or any(
                    h.get("step") == t["step"] and h.get("by") == t.get("by") for h in doc.get("history") or []):
                return False   # done already: a request asked again (maybe once the OUS moved on)
            _guard(uid, doc, t)
            _apply(doc, t)
        return self._change(uid, edit)

    def mark_sent(self, uid, step):
        """The outbox of STEP is sent: only its message ids are kept."""
        def edit(doc):
            outbox = doc.get("outbox") or {}
            if outbox.get("step") != step or outbox.get("sent"):
                return False
            doc["outbox"] = {"step": step, "sent": True, "ids": [m["_id"] for m in outbox["messages"]]}
        return self._change(uid, edit)

    def renew(self, uid, step, seconds):
        """Extend the lease of the review that started with STEP; Refused if it is over."""
        def edit(doc):
            owner = doc.get("owner") or {}
            if doc.get("state") != "Reviewing" or owner.get("step") != step:
                raise Refused(f"{uid} is {where(doc)}: your review of it is over")
            owner["until"] = at(time.time() + seconds)
        return self._change(uid, edit)

    def _change(self, uid, edit):
        check_uid(uid)
        try:
            return self.db.update(encode_uid(uid), lambda doc: edit(_checked(doc, uid)), recent=self.recent)
        except NotFound:
            raise NotFound(f"no OUS {uid}", 404) from None

    def set_state(self, uid, state, strict=False, reason=None):
        """The original's set-state; STRICT refuses a change that is not a life-cycle
        transition (the same state again is no change, so it passes). REASON (beyond
        the original: why, in a sentence) goes into the history and, for
        ProcessingProblem, is the OUS's ``problem``."""
        check_state(state)
        reason = check_reason(reason)

        def edit(doc):
            if strict and state != doc.get("state") and state not in TRANSITIONS.get(doc.get("state"), ()):
                raise InvalidRequest(f"{uid}: {doc.get('state')} -> {state} is not a life-cycle transition "
                                     "(xtss.py --lenient allows it)")
            if state != doc.get("state"):
                doc.pop("owner", None)   # the original's actors record none: the reconciler leaves it alone
            # Delivered ends the ingestion substates (spec §1).
            _record(doc, state, None if state == "Delivered" else doc.get("substate"), reason=reason)
            if state == "ProcessingProblem":
                doc["problem"] = reason or doc.get("problem") or "set-state ProcessingProblem (no reason given)"
            else:
                doc.pop("problem", None)
        return self._change(uid, edit)

    def set_substate(self, uid, substate):
        check_substate(substate)
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
        """Every OUS: for tests and small tables, never an actor (the table grows with the history)."""
        return [d for d in self.db.find({"entityId": {"$gt": None}})]


def check_reason(reason):
    if reason is not None and not isinstance(reason, str):
        raise InvalidRequest(f"a reason is a sentence (a string), not {show(reason)}")
    return reason and reason[:MAX_REASON]


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


def _guard(uid, doc, t):
    """Refused unless DOC is where T expects it: state, substate, assignment, owner."""
    if doc.get("state") not in t["from"]:
        raise Refused(f"{uid} is {where(doc)}, not {' or '.join(t['from'])}")
    if "fromSubstate" in t and (doc.get("substate") or "") not in [s or "" for s in t["fromSubstate"]]:
        raise Refused(f"{uid} is {where(doc)} with substate {doc.get('substate')!r}, "
                      f"not {' or '.join(repr(s) for s in t['fromSubstate'])}")
    assignment = (doc.get("assignment") or {}).get("id")
    if t.get("assignment") and t["assignment"] != assignment:
        raise Refused(f"{uid} is {where(doc)} under assignment {assignment}, "
                      f"not {t['assignment']}: a stale run")
    owner = doc.get("owner") or {}
    if t.get("owner") and t["owner"] not in (owner.get("message"), owner.get("step")):
        raise Refused(f"{uid} is {where(doc)}, owned by someone else now")


def _apply(doc, t):
    """Change DOC as T says (already guarded); see StatusTable.transition."""
    now = timestamp()
    state = t.get("to") or doc.get("state")
    flags = doc.setdefault("flags", {})
    if t.get("assign"):
        flags[EXECUTIVE_FLAG] = t["assign"]
        doc["assignment"] = {"id": t["step"], "executive": t["assign"], "by": t.get("by"), "at": now}
    if t.get("clearExec"):
        flags.pop(EXECUTIVE_FLAG, None)
        doc.pop("assignment", None)
    substate = t["substate"] if "substate" in t else (None if state == "Delivered" else doc.get("substate"))
    for passed in t.get("through", ()):
        _record(doc, passed, substate, t.get("by"))
    _record(doc, state, substate, t.get("by"), t.get("reason"), t["step"])
    messages = t.get("messages") or []
    if messages:
        doc["outbox"] = {"step": t["step"], "sent": False, "messages": messages}
    # Who moves the OUS on from here: the request sent now, or the reviewer's lease.
    if state in ("Processing", "DeliveryInProgress") and messages:
        doc["owner"] = {"message": messages[0]["_id"], "selector": messages[0]["selector"]}
    elif state == "Reviewing" and t.get("lease"):
        doc["owner"] = {"by": t.get("by"), "step": t["step"], "until": at(time.time() + t["lease"])}
    elif t.get("to"):
        doc.pop("owner", None)
    if state == "ProcessingProblem":
        doc["problem"] = t.get("reason") or "no reason given"
    else:
        doc.pop("problem", None)
    doc["step"] = t["step"]


def _record(doc, state, substate, by=None, reason=None, step=None):
    now = timestamp()
    doc.update(state=state, substate=substate, timestamp=now)
    entry = {"state": state, "substate": substate, "timestamp": now}
    if by:
        entry["by"] = by
    if reason:
        entry["reason"] = reason
    if step:   # so that a step asked again after the OUS moved on is known as done
        entry["step"] = step
    doc.setdefault("history", []).append(entry)
