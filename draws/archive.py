"""The archive tables: NGAS, Pipeline reports, products metadata, delivery status.

Every write is idempotent, so handling the same message twice (a redelivery
after a crash) never duplicates a record.
"""

import base64
import hashlib

from . import shapes, tables
from .recent import Recent
from .timestamps import timestamp
from .exceptions import Conflict, NotFound
from .ous import encode_uid

ATTACHMENT = "content"


def checksum(content):
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _checked(table, doc):
    return doc if doc is not None and shapes.check(table, doc) is None else None


class Ngas:
    """NGAS: one document per archived file, its bytes as an attachment."""

    def __init__(self, server):
        self.db = server.db(tables.NGAS)

    def archive(self, name, content, content_type="application/octet-stream"):
        """Store CONTENT as NAME; a file already stored with the same bytes is left alone."""
        digest = checksum(content)
        doc = {"_id": name, "writeTimestamp": timestamp(), "size": len(content),
               "checksum": digest,
               "_attachments": {ATTACHMENT: {"content_type": content_type,
                                             "data": base64.b64encode(content).decode()}}}
        try:
            return self.db.put(dict(doc))   # usually a new name: no need to look first
        except Conflict:
            existing = self.db.get(name)
        if existing.get("checksum") == digest and shapes.check(tables.NGAS, existing) is None:
            return existing   # (a refused document there is replaced by ours)
        try:
            return self.db.put(dict(doc, _rev=existing["_rev"]))
        except Conflict:  # stored meanwhile by another writer: same name, same product
            return self.db.get(name)

    def archive_file(self, path):
        return self.archive(path.name, path.read_bytes(),
                            "application/zip" if path.suffix == ".zip" else "application/octet-stream")

    def get(self, name):
        """The document of file NAME; None if there is none or it is refused (malformed)."""
        return _checked(tables.NGAS, self.db.get_or_none(name))

    def content(self, name):
        return self.db.get_attachment(name, ATTACHMENT)

    def holds(self, name, digest):
        doc = self.get(name)
        return bool(doc) and doc.get("checksum") == digest


class Reports:
    """Pipeline reports: one per Pipeline run."""

    def __init__(self, server):
        self.db = server.db(tables.REPORTS)

    def store(self, ous_uid, run_timestamp, encoded_report, products_dir, source):
        doc_id = f"{run_timestamp}.{encode_uid(ous_uid)}"
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

    def record(self, name, progid, ous_uid, run_timestamp):
        doc = {"_id": name, "progID": progid, "ousUID": ous_uid, "timestamp": run_timestamp}
        try:
            return self.db.put(doc)
        except Conflict:
            return self.db.get(name)

    def get(self, name):
        """The record of product NAME; None if there is none or it is refused (malformed)."""
        return _checked(tables.METADATA, self.db.get_or_none(name))

    def for_ous(self, ous_uid):
        return shapes.well_formed(tables.METADATA, self.db.find({"ousUID": ous_uid}))


class Delivery:
    """Delivery status: one per OUS, listing the products ingested so far."""

    def __init__(self, server):
        self.db = server.db(tables.DELIVERY)
        self.recent = Recent()   # the ingestor adds product after product: no read each time

    def get(self, ous_uid):
        """The OUS's delivery status; None if there is none or it is refused (malformed)."""
        return _checked(tables.DELIVERY, self.db.get_or_none(encode_uid(ous_uid)))

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
