"""Tasks: what a task is (:class:`TaskSpec`, :class:`Task`, :class:`TaskRef`) and its registry
(the plug-ins' base, imported by each). See :mod:`topowire.data.tasks` for how tasks are found."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from topowire import checks, limits
from topowire.errors import ParameterError

__all__ = ["Task", "TaskSpec", "TaskRef", "TASKS", "register_task", "make_task", "OBJECTIVES"]

#: What a task predicts: class ids (one per example), multi-hot targets at every step, or values.
OBJECTIVES = ("classification", "multilabel", "regression")


@dataclass(frozen=True, eq=False)
class Task:
    """Tensors of one task.

    Attributes
    ----------
    name : str
        The task's name in :data:`TASKS`.
    objective : {"classification", "multilabel", "regression"}
        ``classification`` (y: class ids), ``multilabel`` (y: multi-hot targets) or
        ``regression`` (y: values).
    x_train, y_train, len_train, x_test, y_test, len_test : Tensor
        Inputs ``[N, T, d_in]`` (sequences, zero-padded after each length) or ``[N, d_in]``.
        ``len_*`` is None for static inputs.
    d_in, d_out : int
        Input width and readout width.
    per_step : bool
        Targets at every step (next-symbol prediction), not one per sequence.
    ref : TaskRef, optional
        What built it (:func:`make_task` records it): enough to build it again.
    image : (int, int, int), optional
        Static image inputs: their (channels, height, width), channel-major when flattened
        (what standardisation and augmentation need); None for other inputs.
    """

    name: str
    objective: str
    x_train: Tensor
    y_train: Tensor
    len_train: Tensor | None
    x_test: Tensor
    y_test: Tensor
    len_test: Tensor | None
    d_in: int
    d_out: int
    per_step: bool = False
    ref: TaskRef | None = None
    image: tuple[int, int, int] | None = None

    @property
    def sequence(self) -> bool:
        return self.len_train is not None


@dataclass(frozen=True)
class TaskSpec:
    """One task: what it is and how its tensors are built.

    Attributes
    ----------
    name : str
        Its name (``--task``).
    doc : str
        One line: what is predicted from what.
    objective : str
        One of :data:`OBJECTIVES`.
    sequence : bool
        Its inputs are sequences (for targets that run over time) or static vectors.
    build : callable
        ``build(spec, seed=, n_train=, n_test=, **options) -> Task``; sizes arrive resolved
        (None: every example the source has).
    chance : float, optional
        The test accuracy of a guess (balanced classes); a population at chance everywhere
        is refused by the predictors.
    sizes : (int or None, int or None)
        Default training and test sizes (None: all available).
    options : dict of str to str
        The builder's own options and what each means (``data_dir``, ``thesis_csv``),
        refused by other tasks.
    """

    name: str
    doc: str
    objective: str
    sequence: bool
    build: Callable[..., Task]
    chance: float | None = None
    sizes: tuple[int | None, int | None] = (None, None)
    options: dict[str, str] = field(default_factory=dict)


#: Every registered task by name, in registration order.
TASKS: dict[str, TaskSpec] = {}
checks.declare("task", checks.Domain("choice", choices=TASKS))


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task to :data:`TASKS` (a name registered twice is an error)."""
    if spec.name in TASKS or spec.objective not in OBJECTIVES:
        raise ValueError(f"task {spec.name!r} is registered twice or has an unknown objective {spec.objective!r}")
    TASKS[spec.name] = spec
    return spec


def make_task(name: str, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
              **options: Any) -> Task:
    """Build a task's tensors.

    Parameters
    ----------
    name : str
        A key of :data:`TASKS`.
    seed : int
        Data seed (strings, adding sequences, image subsets and permutations).
    n_train, n_test : int, optional
        Sizes (default: the task's; for image tasks every image available). A smaller
        image set takes a random subset drawn with ``seed``.
    **options
        The task's own options (:attr:`TaskSpec.options`): ``data_dir`` of the image tasks,
        ``thesis_csv`` of ``reber``; None is unset.
    """
    spec = TASKS.get(name)
    if spec is None:
        raise ParameterError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}")
    stray = [k for k, v in options.items() if v is not None and k not in spec.options]
    if stray:
        raise ParameterError(f"task {name!r} takes no {', '.join(stray)}"
                             + (f" (its options: {', '.join(spec.options)})" if spec.options else " option"))
    checks.check("seed", seed)
    sizes = []
    for what, given, default in (("n_train", n_train, spec.sizes[0]), ("n_test", n_test, spec.sizes[1])):
        size = checks.check(what, given) if given is not None else default
        sizes.append(None if size is None else limits.check("examples", size, what))
    own = {k: v for k, v in options.items() if k in spec.options and v is not None}
    task = spec.build(spec, seed=seed, n_train=sizes[0], n_test=sizes[1], **own)
    return dataclasses.replace(task, ref=TaskRef(name, seed, sizes[0], sizes[1], {k: str(v) for k, v in own.items()}))


@dataclass(frozen=True)
class TaskRef:
    """What names a task's data: its name, seed, sizes and options -- enough to build the
    same tensors again (:meth:`build`), as a run's record keeps them.

    Attributes
    ----------
    name : str
        The task.
    seed : int
        Its data seed.
    n_train, n_test : int, optional
        Its sizes (None: the task's defaults).
    options : dict
        The builder's options (``data_dir``, ``thesis_csv``), as given.
    """

    name: str
    seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Task:
        """The task's tensors (:func:`make_task`)."""
        return make_task(self.name, seed=self.seed, n_train=self.n_train, n_test=self.n_test, **self.options)

    @property
    def spec(self) -> TaskSpec:
        if self.name not in TASKS:
            raise ParameterError(f"unknown task {self.name!r}: expected one of {', '.join(TASKS)}")
        return TASKS[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "n_train": self.n_train, "n_test": self.n_test,
                "options": {k: str(v) for k, v in self.options.items() if v is not None}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskRef:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ParameterError(f"a task reference is a table with a name, got {d!r}")
        unknown = set(d) - {"name", "seed", "n_train", "n_test", "options"}
        if unknown:
            raise ParameterError(f"unknown task key(s) {', '.join(sorted(unknown))}")
        options = d.get("options") or {}
        if not isinstance(options, dict):
            raise ParameterError(f"task options must be a table, got {options!r}")
        return cls(d["name"], checks.check("seed", d.get("seed", 0)), checks.check("n_train", d.get("n_train")),
                   checks.check("n_test", d.get("n_test")), dict(options))

    def __hash__(self) -> int:
        return hash((self.name, self.seed, self.n_train, self.n_test, tuple(sorted(self.options.items()))))
