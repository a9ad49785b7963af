"""DRAWS timestamps (spec §2): UTC, ISO 8601 with milliseconds and no zone."""

import contextlib
import datetime


def _real_now():
    return datetime.datetime.now(datetime.timezone.utc)


_now = _real_now   # what "now" is: a made-up history (draws.history) sets its own clock


def timestamp(when=None):
    """2018-07-24T09:49:20.902 for WHEN (an aware datetime; default now)."""
    when = when or _now()
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def at(epoch):
    """The timestamp of EPOCH (seconds since 1970)."""
    return timestamp(datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc))


def parse_timestamp(text):
    """Seconds since the epoch of a timestamp() string."""
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


@contextlib.contextmanager
def clock(now):
    """Within it, NOW() (an aware datetime) is the time every default timestamp() takes.

    Only for writing a made-up history in one thread (draws.history): the
    project's own writers then stamp its documents as they would have been.
    """
    global _now
    _now = now
    try:
        yield
    finally:
        _now = _real_now
