"""No OUS without an owner (issue 13): the outbox and the reconciler.

An OUS in a transient state is owned by something live. ``Processing`` and
``DeliveryInProgress`` belong to the request that put the OUS there (its
``pipeline.process.<LOC>`` or ``ingest.JAO`` message, pending, or claimed
under a lease by a receiver); ``Reviewing`` belongs to its reviewer, who
holds a lease renewed while a person decides. The owner is written in the
OUS document (``owner``) by the same guarded update that changes the state,
together with the messages of that step (``outbox``, their ids fixed then):
sending them afterwards can be repeated and never doubles, so a crash
between the update and the send loses nothing.

The reconciler (run by XTSS, every third of a lease) sends an outbox a
crash left unsent: one still unsent a lease after its messages were made
(sooner, it would race the writer's own send, which follows its write at
once); an OUS whose request ended (done or failed) or vanished
while the OUS stayed goes to ``ProcessingProblem`` with the reason in
``problem``; a review whose lease ran out goes back to ``ReadyForReview``.
Each move is a guarded transition (two XTSS may both run it) and a WARNING.
"""

import hashlib
import logging
import threading
import time
import uuid

from . import ids, shapes, tables
from .exceptions import CouchError, DrawsError
from .ous import Refused
from .receiver import LEASE_SECONDS
from .timestamps import parse_timestamp

log = logging.getLogger("draws.owners")

INTERVAL = LEASE_SECONDS / 3    # so an owner gone is acted on within 2 leases
REVIEW_LEASE = LEASE_SECONDS    # a reviewer renews it every third


def new_step():
    """A fresh step (and assignment) id."""
    return uuid.uuid4().hex


def outbox(bus, step, pairs):
    """The message documents of STEP's (selector, body) PAIRS, ids derived from STEP."""
    docs = []
    for index, (selector, body) in enumerate(pairs):
        doc = bus.new_message(selector, body)
        digest = hashlib.sha256(f"{step}/{index}".encode()).hexdigest()[:32]
        doc["_id"] = ids.doc_id(f"{doc['creationTimestamp']}-{digest}")
        docs.append(doc)
    return docs


def send_outbox(msgq, status, doc):
    """Send the messages of DOC's last step unless known sent; how many it wrote (those
    already there, sent before by someone else, are not counted)."""
    box = doc.get("outbox") or {}
    if not box.get("messages") or box.get("sent"):
        return 0
    written = 0
    for message, result in zip(box["messages"], msgq.bulk([dict(m) for m in box["messages"]])):
        if result.get("error") not in (None, "conflict"):   # conflict: sent before
            raise CouchError(f"could not send to {message['selector']}: {result.get('reason')}")
        written += result.get("error") is None
    status.mark_sent(doc["entityId"], box["step"])
    return written


def overdue(box, grace, now):
    """Is the unsent outbox BOX older than GRACE s (its writer gone before sending it)?"""
    try:
        return parse_timestamp(box["messages"][0]["creationTimestamp"]) + grace <= now
    except (IndexError, KeyError, TypeError, ValueError):   # not stamped by our writers
        return True


class Reconciler:
    """Finds OUSs whose owner is gone and re-drives them (see the module's doc)."""

    def __init__(self, status, msgq, identity, interval=INTERVAL, grace=LEASE_SECONDS):
        self.status = status
        self.msgq = msgq
        self.identity = identity
        self.interval = interval
        self.grace = grace   # an outbox younger than this is its writer's to send
        self._stop = threading.Event()

    def start(self):
        threading.Thread(target=self.run, daemon=True, name="reconciler").start()
        return self

    def stop(self):
        self._stop.set()

    def run(self):
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as exc:   # CouchDB away, say: the next round tries again
                log.warning("reconciler: %s: %s", type(exc).__name__, exc)
            self._stop.wait(self.interval)

    def reconcile(self):
        """One round; returns what it did as (uid, what) pairs."""
        done = []
        # (A forged document's outbox must not make us send its messages.)
        for doc in shapes.well_formed(tables.STATUS, self.status.db.find({"outbox.sent": False})):
            uid, box = doc["entityId"], doc["outbox"]
            if not overdue(box, self.grace, time.time()):
                continue
            sent = send_outbox(self.msgq, self.status, doc)
            if sent:
                log.warning("%s: sent %d message(s) of its step %s, left unsent by a crash",
                            uid, sent, box["step"])
                done.append((uid, "sent"))
            else:   # its writer sent them, then stopped (or was slow) before saying so
                log.debug("%s: the messages of its step %s were sent already", uid, box["step"])
        owned = self.status.find("Processing") + self.status.find("DeliveryInProgress")
        # Their requests in one read, not one each: many OUSs may wait for a Pipeline slot.
        requests = self.msgq.get_many({(d.get("owner") or {}).get("message") for d in owned} - {None})
        for doc in owned:
            reason = self._request_gone(doc, requests)
            if reason:
                done += self._move(doc, "ProcessingProblem", reason)
        for doc in self.status.find("Reviewing"):
            owner = doc.get("owner") or {}
            if owner.get("until") and parse_timestamp(owner["until"]) < time.time():
                done += self._move(doc, "ReadyForReview",
                                   f"its review by {owner.get('by')} stopped (no sign of life since "
                                   f"{owner['until']}): ready for review again")
        return done

    def _request_gone(self, doc, requests):
        """Why DOC's request can no longer move it on, or None while it may (REQUESTS:
        the msgq documents by id, read once this round)."""
        owner = doc.get("owner") or {}
        mid = owner.get("message")
        if not mid or doc.get("substate") == "ProductsIngested":
            return None   # no request known (the original's actors), or the Data Tracker's turn
        box = doc.get("outbox") or {}
        if box.get("messages") and not box.get("sent"):
            return None   # not sent yet: the round's first part sends it
        message = requests.get(mid)
        if message is None:
            return f"its {owner.get('selector')} request {mid} is gone from msgq"
        if not message.get("consumed") or message.get("status") == "claimed":
            return None   # waiting, or being handled (or taken over once its lease ran out)
        error = f" ({message['error']})" if message.get("error") else ""
        return f"its {message.get('selector')} request ended {message.get('status', 'done')}{error}"

    def _move(self, doc, state, reason):
        uid, owner = doc["entityId"], doc.get("owner") or {}
        try:
            self.status.transition(uid, {
                "step": f"reconcile-{new_step()}", "by": self.identity, "from": [doc["state"]],
                "to": state, "owner": owner.get("message") or owner.get("step"), "reason": reason})
        except Refused:
            return []   # it moved on meanwhile: it had an owner after all
        except DrawsError as exc:
            log.warning("%s: could not move it to %s: %s", uid, state, exc)
            return []
        log.warning("%s: %s -> %s: %s", uid, doc["state"], state, reason)
        return [(uid, state)]
