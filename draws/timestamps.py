"""DRAWS timestamps (spec §2): UTC, ISO 8601 with milliseconds and no zone."""

import datetime


def timestamp(when=None):
    """2018-07-24T09:49:20.902 for WHEN (an aware datetime; default now)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
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
