"""The six DRAWS tables and the indexes the code relies on (spec §2).

``ensure(server)`` creates whatever is missing; every actor calls it at
start, so nobody has to create a database by hand.
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
    STATUS: {"state": ["state"]},
    REPORTS: {"ous": ["ousUID"], "time": ["timestamp"]},
    METADATA: {"ous": ["ousUID"], "time": ["timestamp"]},
    # The dashboard lists the newest documents of these ("time": sort by time).
    DELIVERY: {"time": ["timestamp"]},
    NGAS: {"time": ["writeTimestamp"]},
}

_ensured = set()


def ensure(server):
    """Create the DRAWS tables and their indexes (idempotent, once per process)."""
    if server.url in _ensured:
        return
    for name in ALL:
        db = server.db(name)
        try:
            if db.create():
                log.info("created table %s", name)
        except Conflict:
            pass  # created by another actor at the same moment
        for index, fields in INDEXES.get(name, {}).items():
            db.ensure_index(fields, index)
    _ensured.add(server.url)
