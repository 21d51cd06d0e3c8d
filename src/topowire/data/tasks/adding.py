"""The adding problem (Hochreiter & Schmidhuber): sum the two marked values of a sequence of 50."""

from __future__ import annotations

import torch

from topowire.data.adding import make_adding
from topowire.data.tasks.base import Task, TaskSpec, register_task


def _build(spec: TaskSpec, *, seed: int, n_train: int, n_test: int) -> Task:
    from topowire.seeds import derive

    x_tr, y_tr = make_adding(n_train, 50, seed=seed)
    x_te, y_te = make_adding(n_test, 50, seed=derive(seed, "test data"))
    full = lambda x: torch.full((x.shape[0],), x.shape[1])  # noqa: E731
    return Task(spec.name, spec.objective, x_tr, y_tr, full(x_tr), x_te, y_te, full(x_te), 2, 1)


register_task(TaskSpec("adding", "adding problem, T = 50", "regression", True, _build, sizes=(2000, 500)))
