"""Who else serves a selector: said once when a receiver starts (a second XTSS shares the work).

Each receiver enters its name (``actor@host:pid``) in a ``_local`` document
of msgq for its selector when it starts, and takes it out when it stops.
``_local`` documents are neither replicated nor in the changes feed, so the
bus pays nothing for them. An entry of a process of this host that is gone
(killed) is dropped; one of another host cannot be checked and is named
with the time it started.
"""

import logging
import os
import socket

from .exceptions import CouchError
from .timestamps import timestamp

log = logging.getLogger("draws.presence")


def _doc_id(name):
    return f"_local/receivers-{name}"


def _alive(entry):
    if entry.get("host") != socket.gethostname():
        return True   # cannot tell: named as possibly stopped
    try:
        os.kill(int(entry.get("pid")), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        pass   # someone else's process, or an entry we cannot read: not ours to drop
    return True


def enter(bus, name):
    """Record that this process serves NAME; log the others that do. Returns their names."""
    others = {}

    def change(doc):
        entries = {who: e for who, e in (doc.get("receivers") or {}).items()
                   if isinstance(e, dict) and who != bus.identity and _alive(e)}
        others.clear()
        others.update(entries)
        entries[bus.identity] = {"host": socket.gethostname(), "pid": os.getpid(), "since": timestamp()}
        doc["receivers"] = entries
    try:
        bus.db.update(_doc_id(name), change, create=dict)
    except CouchError as exc:   # only a courtesy: never stop a receiver for it
        log.debug("could not record the receiver of %s: %s", name, exc)
        return []
    for who, entry in sorted(others.items()):
        where = "" if entry.get("host") == socket.gethostname() else \
            f" on another host; it may have stopped since {entry.get('since')}"
        log.warning("another receiver serves '%s' too: %s%s (the two share its messages)", name, who, where)
    return sorted(others)


def leave(bus, name):
    """Take this process out of NAME's receivers (best effort)."""
    def change(doc):
        if bus.identity not in (doc.get("receivers") or {}):
            return False
        del doc["receivers"][bus.identity]
    try:
        bus.db.update(_doc_id(name), change)
    except CouchError:
        pass
