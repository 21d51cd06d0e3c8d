"""Plug-ins found, not listed: the modules of a plug-in package and an entry-point group.

A compile target or a task is one file that registers itself when imported
(:func:`~topowire.compiler.targets.register_target`,
:func:`~topowire.data.tasks.register_task`). :func:`discover` imports every module of its
package -- a file dropped into ``compiler/targets/`` or ``data/tasks/`` is found with no
other edit -- and then the entry points of a group, so a package outside topowire adds one
by declaring, in its ``pyproject.toml``::

    [project.entry-points."topowire.targets"]
    my-target = "my_package.my_target"
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points

__all__ = ["discover"]


def discover(package: str, path: Iterable[str], first: Sequence[str] = (), group: str | None = None) -> list[str]:
    """Import the plug-in modules of ``package``: ``first`` in that order (the built-ins,
    whose order the command line shows), then every other module of ``path`` by name
    (modules named ``_*`` or ``base`` are not plug-ins), then each entry point of ``group``.
    Returns the modules imported, in order."""
    found = sorted(m.name for m in pkgutil.iter_modules(list(path)) if not m.name.startswith("_") and m.name != "base")
    names = [*first, *(name for name in found if name not in first)]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    loaded = [f"{package}.{name}" for name in names]
    for point in entry_points(group=group) if group else ():
        point.load()
        loaded.append(point.value)
    return loaded
