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
    return key if doc_id(key) != key else None


def forms(key):
    """Every id the document for KEY may have, the current one first."""
    return (doc_id(key),) + ((key,) if old_id(key) else ())


def get(db, key):
    """The document for KEY under either form of its id, or None."""
    for form in forms(key):
        doc = db.get_or_none(form)
        if doc is not None:
            return doc
    return None


def get_old(db, key):
    """The document an earlier version stored for KEY under its old id, or None."""
    return db.get_or_none(old_id(key)) if old_id(key) else None
