"""The DRAWS web dashboard: a Flask app that shows the tables live.

Where things are: ``app.py`` the factory (settings in app.config),
``pages.py`` and ``api.py`` the two blueprints (a new page: a route in
pages.py, a template, and its data in ``views.py``), ``views.py`` what is
read from the tables and how it is shaped, ``live.py`` the changes feeds
and the server-sent events, ``server.py`` the command line.
"""

from .app import create_app

__all__ = ["create_app"]
