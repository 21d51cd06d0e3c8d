"""Tasks as plug-ins: one file per task family, looked up in one registry.

A :class:`TaskSpec` says what a task is -- its name, what its inputs are (sequences or a
static vector), what is predicted (its objective), the accuracy of a guess, its default
sizes -- and builds its tensors (:class:`Task`). :func:`make_task` and the command line's
``--task`` choices come from :data:`TASKS`; adding a task is one spec and one builder,
registered with :func:`register_task` in a module of this package (found with no other
edit) or of another package under the entry-point group ``topowire.tasks``
(:mod:`topowire.plugins`). The protocol and the registry live in :mod:`.base`. Data come
from packages and files, never from a download at run time.
"""

from __future__ import annotations

from topowire.data.tasks.base import OBJECTIVES, TASKS, Task, TaskRef, TaskSpec, make_task, register_task
from topowire.plugins import discover

__all__ = ["Task", "TaskSpec", "TaskRef", "TASKS", "register_task", "make_task", "OBJECTIVES"]

# every task registers itself: the built-ins in the order of --task, then any other module
# dropped into this package, then the entry points of "topowire.tasks" (topowire.plugins)
discover(__name__, __path__, ("reber", "images", "adding"), "topowire.tasks")
