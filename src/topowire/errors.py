"""The exceptions topowire raises on bad input.

Every error a user can cause derives from :class:`TopowireError`; the command line
prints its message on one line (``error: ...``) and exits with status 2. Messages name
the offending value and what was expected.
"""

from __future__ import annotations

__all__ = [
    "TopowireError",
    "ParameterError",
    "FileFormatError",
    "NotADAGError",
    "DataError",
    "ArgumentTypeError",
]


class TopowireError(Exception):
    """Base class of every error caused by bad input to topowire."""


class ParameterError(TopowireError, ValueError):
    """A parameter (generator argument, recipe entry, option) has an impossible value."""


class FileFormatError(TopowireError, ValueError):
    """A file is missing, empty, corrupt or not in the expected format."""


class NotADAGError(TopowireError, ValueError):
    """A directed acyclic graph was required but the graph has a cycle."""


class DataError(TopowireError, ValueError):
    """A data set or table does not have the expected content (shape, columns, labels)."""


class ArgumentTypeError(ParameterError, TypeError):
    """An argument has the wrong type (a string where an integer was expected, ...).

    Both a :class:`TypeError` (as Python's conventions want) and a
    :class:`ParameterError` (so the command line reports it in one line).
    """
