"""Copies of the documents a process wrote last, so it can change them again unread."""

import copy
import threading


class Recent:
    """The last SIZE documents a process wrote (copies), for Database.update."""

    def __init__(self, size=256):
        self.size = size
        self._docs = {}
        self._lock = threading.Lock()

    def keep(self, doc):
        with self._lock:
            self._docs.pop(doc["_id"], None)
            self._docs[doc["_id"]] = copy.deepcopy(doc)
            if len(self._docs) > self.size:
                del self._docs[next(iter(self._docs))]   # the oldest

    def take(self, doc_id):
        """The copy of DOC_ID, now the caller's (None if not kept)."""
        with self._lock:
            return self._docs.pop(doc_id, None)
