"""The original mockup's actors as the contract describes them (spec §2, §9), for tests.

Written from the contract alone, not from the original's code: documents and
messages in its exact shapes (ids with "_" for ":", local-time
creationTimestamps, NGAS bytes base64 in encodedContents, a report's source
the cache path) and an XTSS with its semantics (a Mango $regex on the
substate, which never matches null; the substate never emptied by it).
Nothing here uses draws' own id rule, so a test sees what the original sees.
"""

import base64
import datetime
import threading
import time
import uuid

from support import wait_for

# The original's clock: local time at the observatory, four hours behind UTC.
LOCAL = datetime.timezone(datetime.timedelta(hours=-4))


def local_timestamp():
    return datetime.datetime.now(LOCAL).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def original_id(key):
    """The original's storage layer: every ":" of an _id becomes "_"."""
    return key.replace(":", "_")


def ous_id(uid):
    return original_id(uid).replace("/", "_")


class OriginalBus:
    """msgq as the original's helpers use it: plain writes, taken by overwriting consumed."""

    def __init__(self, server):
        self.db = server.db("msgq")

    def send(self, selector, body, msgback_id=None):
        created = local_timestamp()
        doc = {"_id": original_id(f"{created}-{uuid.uuid4().hex}"), "creationTimestamp": created,
               "originIP": "10.200.0.7", "selector": selector, "consumed": False, "body": body}
        if msgback_id:
            doc["msgbackID"] = msgback_id
        self.db.put(doc)
        return doc["_id"]

    def take(self, selector):
        """The oldest unconsumed message on SELECTOR, marked consumed; None if there is none."""
        docs = sorted(self.db.find({"selector": selector, "consumed": False}), key=lambda d: d["_id"])
        for doc in docs:
            doc["consumed"] = True
            try:
                self.db.put(doc)
                return doc
            except Exception:   # taken meanwhile (the original would have taken it twice)
                continue
        return None

    def call(self, selector, body, timeout=60):
        """An RPC request as the original's send-rpc makes it (a JSON object body); the reply's body."""
        msgback_id = uuid.uuid4().hex
        self.send(selector, body, msgback_id)
        return wait_for(lambda: self.take(msgback_id), timeout, interval=0.1,
                        what=f"a reply to {body}")["body"]

    def xtss(self, operation, uid=None, value=None, **fields):
        body = {"operation": operation, **fields}
        if uid:
            body.update(ousUID=uid, value=value)
        return self.call("xtss", body)


PLAIN_OPERATIONS = ("set-state", "set-substate", "set-exec", "clear-exec")


class OriginalXtss:
    """XTSS as the original's (spec §9): serves ``xtss`` by polling; finds with a Mango
    $regex on the substate (never matching null); set-state never touches the substate;
    an operation it does not know gets an error reply."""

    def __init__(self, server):
        self.bus = OriginalBus(server)
        self.status = server.db("status-entities")
        self.served = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="original-xtss")

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.is_set():
            doc = self.bus.take("xtss")
            if doc is None:
                time.sleep(0.05)
                continue
            body = doc["body"]
            self.served.append(body)
            self.bus.send(doc["msgbackID"], self.serve(body))

    def serve(self, body):
        operation, value = body["operation"], body.get("value")
        if operation == "get-ouss-by-state-substate":
            return self.status.find({"state": body["state"], "substate": {"$regex": body["substate"]}})
        if operation not in PLAIN_OPERATIONS:   # 'transition' and 'renew' among them (CONTRACT §9)
            return {"error": f"unknown operation {operation!r}"}
        ous = self.status.get(ous_id(body["ousUID"]))
        if operation == "set-state":
            ous["state"] = value
        elif operation == "set-substate":
            ous["substate"] = value
        elif operation == "set-exec":
            ous.setdefault("flags", {})["PL_PROCESSING_EXECUTIVE"] = value
        elif operation == "clear-exec":
            ous.setdefault("flags", {}).pop("PL_PROCESSING_EXECUTIVE", None)
        ous["timestamp"] = local_timestamp()
        self.status.put(ous)
        return 201


def launch(server, progid, uid, recipe=None):
    """The original's launcher: the OUS ReadyForProcessing, substate RECIPE (else null), no
    flags, no history."""
    db = server.db("status-entities")
    doc = db.get_or_none(ous_id(uid)) or {"_id": ous_id(uid)}
    doc.update(entityId=uid, progID=progid, state="ReadyForProcessing", substate=recipe, flags={},
               timestamp=local_timestamp())
    db.put(doc)


# The query of the original's AQUA Batch Helper (spec §9): a field-level $or, which
# PouchDB Server 4.2.0 answers with 400 (and the helper exits).
WITHOUT_RECIPE = {"state": "ReadyForProcessing", "substate": {"$or": [{"$eq": None}, {"$eq": ""}]}}


def give_recipes(server, recipe):
    """One round of the original's AQUA Batch Helper: RECIPE written into every OUS the
    query finds; their UIDs."""
    db = server.db("status-entities")
    found = db.find(WITHOUT_RECIPE)
    for doc in found:
        doc.update(substate=recipe, timestamp=local_timestamp())
        db.put(doc)
    return [doc["entityId"] for doc in found]


def archive(server, name, content):
    """An NGAS file as the original's ingestor and JAO replicator write it."""
    server.db("ngas").put({"_id": original_id(name), "writeTimestamp": local_timestamp(),
                           "encodedContents": base64.b64encode(content).decode()})


def report_doc(uid, run, source, encoded_report, products_dir):
    """A pipeline-reports document as the original's AQUA/QA2 stores it."""
    return {"_id": original_id(f"{run}.{ous_id(uid)}"), "ousUID": uid, "timestamp": run,
            "encodedReport": encoded_report, "productsDir": products_dir,
            "source": source}
