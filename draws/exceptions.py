"""Errors raised by the draws library, each a sentence a person can act on."""


class DrawsError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(DrawsError):
    """A setting is missing or invalid."""


class CouchError(DrawsError):
    """CouchDB answered with an error."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


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
