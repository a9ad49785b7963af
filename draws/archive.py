"""The archive tables: NGAS, Pipeline reports, products metadata, delivery status.

Every write is idempotent, so handling the same message twice (a redelivery
after a crash) never duplicates a record.
"""

import base64
import binascii
import hashlib

from . import ids, shapes, tables
from .recent import Recent
from .timestamps import timestamp
from .exceptions import Conflict, InvalidRequest, NotFound
from .ous import encode_uid

ATTACHMENT = "content"


def checksum(content):
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _checked(table, doc):
    return doc if doc is not None and shapes.check(table, doc) is None else None


def _decoded(doc):
    """The bytes of an NGAS document in the original's form (base64 in encodedContents)."""
    try:
        return base64.b64decode(doc["encodedContents"], validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise InvalidRequest(f"{doc['_id']}: encodedContents is not base64 text") from None


class Ngas:
    """NGAS: one document per archived file, its bytes as an attachment.

    The original's documents hold the bytes base64 in ``encodedContents``
    with no checksum (spec §2): they count as archived files all the same.
    """

    def __init__(self, server):
        self.db = server.db(tables.NGAS)

    def archive(self, name, content, content_type="application/octet-stream", earlier=None):
        """Store CONTENT as NAME; a file already stored with the same bytes is left alone.
        EARLIER (ids.get_old_many, for many files at once) saves a look for an old id."""
        digest = checksum(content)
        old = ids.get_old(self.db, name, earlier)
        if old is not None and self.checksum_of(old) == digest:
            return old
        doc = {"_id": ids.doc_id(name), "writeTimestamp": timestamp(), "size": len(content),
               "checksum": digest,
               "_attachments": {ATTACHMENT: {"content_type": content_type,
                                             "data": base64.b64encode(content).decode()}}}
        try:
            return self.db.put(dict(doc))   # usually a new name: no need to look first
        except Conflict:
            existing = self.db.get(doc["_id"])
        if self.checksum_of(existing) == digest:
            return existing   # (a refused document there is replaced by ours)
        try:   # a different file under that name: ours replaces it (and any encodedContents)
            return self.db.put(dict(doc, _rev=existing["_rev"]))
        except Conflict:  # stored meanwhile by another writer: same name, same product
            return self.db.get(doc["_id"])

    def archive_file(self, path, earlier=None):
        return self.archive(path.name, path.read_bytes(),
                            "application/zip" if path.suffix == ".zip" else "application/octet-stream",
                            earlier)

    def get(self, name):
        """The document of file NAME under either form of its id; None if there is none
        or it is refused (malformed)."""
        return _checked(tables.NGAS, ids.get(self.db, name))

    def content(self, name):
        """The bytes of file NAME; NotFound while they are not there."""
        doc = self.get(name)
        if doc is None:
            raise NotFound(f"{name} is not in NGAS", 404)
        if "encodedContents" in doc and ATTACHMENT not in (doc.get("_attachments") or {}):
            return _decoded(doc)
        return self.db.get_attachment(doc["_id"], ATTACHMENT)

    @staticmethod
    def checksum_of(doc):
        """The checksum of an NGAS document's file: the stored one, else that of its
        encodedContents (the original's form); None if it has neither or is refused."""
        if _checked(tables.NGAS, doc) is None:
            return None   # (its encodedContents, if any, is base64: the shape says so)
        return doc["checksum"] if "encodedContents" not in doc else checksum(_decoded(doc))

    def holds(self, name, digest):
        doc = self.get(name)
        return bool(doc) and self.checksum_of(doc) == digest


class Reports:
    """Pipeline reports: one per Pipeline run."""

    def __init__(self, server):
        self.db = server.db(tables.REPORTS)

    def store(self, ous_uid, run_timestamp, encoded_report, products_dir, source):
        key = f"{run_timestamp}.{encode_uid(ous_uid)}"
        stored = ids.get_old(self.db, key)
        if stored is not None:
            return stored   # the same run's report, stored by an earlier version
        doc_id = ids.doc_id(key)
        doc = {"_id": doc_id, "ousUID": ous_uid, "timestamp": run_timestamp,
               "encodedReport": encoded_report, "productsDir": products_dir, "source": source}
        try:
            return self.db.put(doc)
        except Conflict:
            return self.db.get(doc_id)  # the same run's report, stored before

    def for_ous(self, ous_uid):
        """The OUS's reports, newest run first."""
        docs = shapes.well_formed(tables.REPORTS, self.db.find({"ousUID": ous_uid}))
        return sorted(docs, key=lambda d: d.get("timestamp", ""), reverse=True)

    def latest(self, ous_uid):
        docs = self.for_ous(ous_uid)
        return docs[0] if docs else None

    @staticmethod
    def decode(doc):
        return base64.b64decode(doc["encodedReport"]).decode("utf-8", errors="replace")


class Metadata:
    """Products metadata (the ASA): one record per data product."""

    def __init__(self, server):
        self.db = server.db(tables.METADATA)

    def record(self, name, progid, ous_uid, run_timestamp, earlier=None):
        """Record product NAME; EARLIER as for Ngas.archive."""
        stored = ids.get_old(self.db, name, earlier)
        if stored is not None:
            return stored   # recorded by an earlier version
        doc = {"_id": ids.doc_id(name), "progID": progid, "ousUID": ous_uid, "timestamp": run_timestamp}
        try:
            return self.db.put(doc)
        except Conflict:
            return self.db.get(doc["_id"])

    def get(self, name):
        """The record of product NAME under either form of its id; None if there is none
        or it is refused (malformed)."""
        return _checked(tables.METADATA, ids.get(self.db, name))

    def for_ous(self, ous_uid):
        return shapes.well_formed(tables.METADATA, self.db.find({"ousUID": ous_uid}))


class Delivery:
    """Delivery status: one per OUS, listing the products ingested so far."""

    def __init__(self, server):
        self.db = server.db(tables.DELIVERY)
        self.recent = Recent()   # the ingestor adds product after product: no read each time

    def get(self, ous_uid):
        """The OUS's delivery status; None if there is none or it is refused (malformed)."""
        return _checked(tables.DELIVERY, ids.get(self.db, encode_uid(ous_uid)))

    def start(self, progid, ous_uid):
        """Open (or reopen, for a new delivery) the OUS's delivery status."""
        def change(doc):
            doc.update(progID=progid, ousUID=ous_uid, timestamp=timestamp(),
                       dataProducts=[], complete=False)
        return self.db.update(encode_uid(ous_uid), change, create=dict, recent=self.recent)

    def add(self, ous_uid, name):
        def change(doc):
            if name in doc["dataProducts"]:
                return False
            doc["dataProducts"] = sorted(doc["dataProducts"] + [name])
            doc["timestamp"] = timestamp()
        return self.db.update(encode_uid(ous_uid), change, recent=self.recent)

    def complete(self, ous_uid):
        def change(doc):
            if doc.get("complete"):
                return False
            doc.update(complete=True, timestamp=timestamp())
        try:
            return self.db.update(encode_uid(ous_uid), change, recent=self.recent)
        except NotFound:
            raise NotFound(f"no delivery status for {ous_uid}", 404) from None
