"""The DRAWS web dashboard (issue #4): a Flask app that shows the tables live."""

from .app import create_app

__all__ = ["create_app"]
