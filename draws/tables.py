"""The six DRAWS tables and the indexes the code relies on (spec §2).

``ensure(server)`` creates whatever is missing; every actor calls it at
start, so nobody has to create a database by hand. When the server's URL
carries credentials, a table still open to anyone gets a ``_security``
document making that user (and the server's admins) its only members, so
anonymous requests are refused (401).
"""

import logging

from .exceptions import Conflict

log = logging.getLogger("draws.tables")

MSGQ = "msgq"
STATUS = "status-entities"
REPORTS = "pipeline-reports"
METADATA = "products-metadata"
DELIVERY = "delivery-status"
NGAS = "ngas"
ALL = (MSGQ, STATUS, REPORTS, METADATA, DELIVERY, NGAS)

INDEXES = {
    MSGQ: {"consumed": ["consumed"], "status": ["status"], "created": ["creationTimestamp"]},
    # "state-time": the newest OUSs of one state (the dashboard's Delivered, which grows with the history).
    STATUS: {"state": ["state"], "state-time": ["state", "timestamp"]},
    REPORTS: {"ous": ["ousUID"], "time": ["timestamp"]},
    METADATA: {"ous": ["ousUID"], "time": ["timestamp"]},
    # The dashboard lists the newest documents of these ("time": sort by time).
    DELIVERY: {"time": ["timestamp"]},
    NGAS: {"time": ["writeTimestamp"]},
}


def ensure(server):
    """Create the DRAWS tables and their indexes (idempotent; a few quick requests)."""
    for name in ALL:
        db = server.db(name)
        # Look before creating: PouchDB Server never answers an anonymous
        # creation once it has an admin, while a look gets a plain 401.
        try:
            if not db.exists() and db.create():
                log.info("created table %s", name)
        except Conflict:
            pass  # created by another actor at the same moment
        if server.user and db.open_to_all():
            try:
                db.restrict_to(server.user)
                log.info("table %s: only %s and CouchDB's admins may use it", name, server.user)
            except Conflict:
                pass  # another actor starting at the same moment did it (PouchDB Server: 409)
        for index, fields in INDEXES.get(name, {}).items():
            db.ensure_index(fields, index)
