"""Errors raised by the draws library, each a sentence a person can act on."""

import errno
from contextlib import contextmanager


class DrawsError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(DrawsError):
    """A setting is missing or invalid."""


class CouchError(DrawsError):
    """CouchDB answered with an error."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status

    @property
    def transient(self):
        """The server's trouble, not the request's (unreachable, overloaded, restarting):
        the same request may well succeed a little later."""
        return isinstance(self, Unavailable) or (self.status or 0) >= 500


class NotFound(CouchError):
    """The document or database does not exist."""


class Conflict(CouchError):
    """The document changed since it was read (or already exists)."""


class Unauthorized(CouchError):
    """CouchDB refused our credentials (or their absence)."""


class Unavailable(CouchError):
    """CouchDB could not be reached."""


class StartFailed(DrawsError):
    """A program we run (this host's CouchDB server) is missing or did not start."""


class RPCTimeout(DrawsError):
    """No reply came to an RPC request in time."""


class RemoteError(DrawsError):
    """The RPC executor answered with an error."""


class InvalidRequest(DrawsError):
    """A message or command-line argument is malformed; the text says how."""


class StorageError(DrawsError):
    """A folder could not be written: out of space, read-only, or an I/O error."""

    ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)   # the storage's, not the caller's

    @classmethod
    def of(cls, exc, place, doing):
        """The error for the OSError EXC met while DOING (``copying X``) in PLACE
        (``the EU cache at /x``), in one sentence a person can act on."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            head = f"no space left in {place}"
        elif exc.errno == errno.EROFS:
            head = f"{place} is read-only"
        else:
            head = f"cannot write in {place}"
        return cls(f"{head}: {doing} failed ({exc.strerror or exc})")

    @classmethod
    @contextmanager
    def wrap(cls, place, doing):
        """Turn an OSError of the storage (ERRNOS) while DOING in PLACE into a StorageError."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in cls.ERRNOS:
                raise
            raise cls.of(exc, place, doing) from None
