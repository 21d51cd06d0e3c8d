"""Executors: where the packs of a population are trained (DESIGN §5).

:func:`~topowire.train.train_population` turns a population into a list of pack jobs
(:class:`~topowire.train.trainer.PackJob`: the models of one pack, the arch and the
training config) and hands them to an executor, which yields ``(job, rows)`` as each pack
finishes -- in any order. The driver alone writes the store, so an executor only computes.

The contract a new executor (a cluster, a process pool) keeps:

- ``map(jobs, task)`` runs ``job.run(task)`` for every job, anywhere, and yields
  ``(job, rows)`` as results arrive; a job's result does not depend on where it ran
  (every model's seed is in the job);
- it yields nothing twice and stops cleanly when the consumer stops iterating.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from topowire import checks

if TYPE_CHECKING:  # pragma: no cover
    from topowire.data.tasks import Task
    from topowire.train.trainer import PackJob

__all__ = ["Executor", "LocalExecutor", "EXECUTORS", "get_executor"]


class Executor(Protocol):
    """Runs pack jobs; yields ``(job, rows)`` as each finishes."""

    def map(self, jobs: Iterable[PackJob], task: Task) -> Iterator[tuple[PackJob, list[dict[str, Any]]]]: ...


class LocalExecutor:
    """Every pack in this process, one after the other (the default)."""

    def map(self, jobs: Iterable[PackJob], task: Task) -> Iterator[tuple[PackJob, list[dict[str, Any]]]]:
        for job in jobs:
            yield job, job.run(task)


#: Executors by name (the ``--executor`` choices).
EXECUTORS = {"local": LocalExecutor}


def get_executor(executor: str | Executor) -> Executor:
    """An executor instance from its name, or the instance given."""
    if isinstance(executor, str):
        return EXECUTORS[checks.choice("executor", executor, EXECUTORS, noun="executor")]()
    if not hasattr(executor, "map"):
        raise TypeError(f"executor must be a name or have a map(jobs, task) method, got {type(executor).__name__}")
    return executor
