"""The six DRAWS tables and the indexes the code relies on (spec §2).

``ensure(server)`` creates whatever is missing; every actor calls it at
start, so nobody has to create a database by hand. When the server's URL
carries credentials, a table still open to anyone gets a ``_security``
document making that user (and the server's admins) its only members, so
anonymous requests are refused (401).
"""

import logging
import random
import time

from .exceptions import Conflict, CouchError, NotFound

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
    # "outbox": XTSS's reconciler looks for unsent outboxes every 10 s; without it PouchDB
    # reads every OUS each time (858 ms at 1,500 OUSs, against 27 ms with it).
    STATUS: {"state": ["state"], "state-time": ["state", "timestamp"], "outbox": ["outbox.sent"]},
    REPORTS: {"ous": ["ousUID"], "time": ["timestamp"]},
    METADATA: {"ous": ["ousUID"], "time": ["timestamp"]},
    # The dashboard lists the newest documents of these ("time": sort by time).
    DELIVERY: {"time": ["timestamp"]},
    NGAS: {"time": ["writeTimestamp"]},
}


def ensure(server, attempts=20):
    """Create whatever of the DRAWS tables and indexes is missing; return once all are
    there, read back.

    Every actor calls it at start, so several may run it at the same moment
    on a server without the tables: an answer saying someone else is creating
    the same thing (409, 412, and Apache CouchDB's 500 ``error_saving_ddoc``
    and 500 ``conflict``, all a Conflict here) means "look again", a bounded
    number of times. On a server that has them it costs two or three reads a table.
    """
    missing = ALL
    for attempt in range(attempts):
        if attempt:   # let the other starters finish what they began
            time.sleep(random.uniform(0.05, 0.1 * attempt))
        missing = [name for name in missing if not _ensure_table(server, name)]
        if not missing:
            return
    raise CouchError(f"tables {', '.join(missing)} still incomplete after {attempts} attempts")


def _ensure_table(server, name):
    """Create what TABLE lacks; True when it is complete (read back), False to look again."""
    db = server.db(name)
    try:
        # Look before creating: PouchDB Server never answers an anonymous
        # creation once it has an admin, while a look gets a plain 401.
        if not db.exists() and db.create():
            log.info("created table %s", name)
        if server.user and db.open_to_all():
            db.restrict_to(server.user)
            log.info("table %s: only %s and CouchDB's admins may use it", name, server.user)
        wanted = INDEXES.get(name, {})
        missing = set(wanted) - db.index_names()
        for index in missing:
            db.ensure_index(wanted[index], index)
        return not missing or not set(wanted) - db.index_names()
    except (Conflict, NotFound):
        return False   # being created by another actor at this moment
