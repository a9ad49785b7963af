"""Jinja filters: timestamps, durations and sizes as people read them."""

import re

from markupsafe import Markup, escape

from draws.timestamps import parse_timestamp
from draws.ous import encode_uid


def when(ts):
    """2018-07-24T09:49:20.902 -> 2018-07-24 09:49:20 (anything else shown as it is)."""
    if not isinstance(ts, str):
        return "—" if ts is None else str(ts)
    try:
        parse_timestamp(ts)
    except ValueError:
        return ts
    return ts.replace("T", " ").split(".")[0]


def duration(seconds):
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def size(n):
    if not isinstance(n, (int, float)):
        return "—"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def number(n):
    return f"{n:,}".replace(",", "\u2009") if isinstance(n, int) else str(n)


def ous_id(uid):
    """The OUS page id of a UID (its status document id)."""
    return encode_uid(uid) if isinstance(uid, str) else ""


# Where a name may wrap: between the words of a CamelCase name
# (ReadyFor|Processing, Pipeline|Combination) and after a slash of a UID.
_BREAKS = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=/)(?=[^/])")


def breakable(name):
    """NAME escaped, with <wbr> where it may wrap, so it never breaks mid-word."""
    if name is None:
        return ""
    return Markup("<wbr>").join(escape(part) for part in _BREAKS.split(str(name)))


def register(app):
    app.jinja_env.filters.update(when=when, duration=duration, size=size, number=number, ous_id=ous_id,
                                 breakable=breakable)
