"""Document ids as the original mockup writes them (spec §2): no ``:`` in any ``_id``.

The original's storage layer replaced every ``:`` of an ``_id`` by ``_``,
both when it saved a document and when it looked one up; this project does
the same, so each side finds what the other wrote. Field values keep their
``:``. Earlier versions of this project kept the ``:``, so a lookup also
tries that old form: their tables keep working.
"""


def doc_id(key):
    """The ``_id`` of the document for KEY (a file name, a message's time and number…)."""
    return key.replace(":", "_")


def old_id(key):
    """The id an earlier version of this project gave KEY, when it differs from doc_id(KEY)."""
    return key if ":" in key else None


def get(db, key):
    """The document for KEY under either form of its id, or None."""
    doc = db.get_or_none(doc_id(key))
    return doc if doc is not None else get_old(db, key)


def get_old(db, key, known=None):
    """The document an earlier version stored for KEY under its old id, or None.
    KNOWN, from get_old_many, answers without a request when it covers KEY."""
    if known is not None and key in known:
        return known[key]
    old = old_id(key)
    return db.get_or_none(old) if old else None


def get_old_many(db, keys):
    """{key: document an earlier version stored for it under its old id, or None}
    for every one of KEYS, in one request (a writer of many documents at once)."""
    olds = {key: old_id(key) for key in keys}
    found = db.get_many({old for old in olds.values() if old})
    return {key: found.get(old) for key, old in olds.items()}
