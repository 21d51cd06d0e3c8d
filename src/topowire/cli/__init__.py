"""The ``topowire`` command line: parse, call the library, print. No logic of its own.

One module per kind of work (graphs, models, studies); ``_app`` holds the app, its error
handling and the option toolkit they share.
"""

from topowire.cli import graphs, models, study  # noqa: F401  (register the commands)
from topowire.cli._app import app, main

__all__ = ["app", "main"]
