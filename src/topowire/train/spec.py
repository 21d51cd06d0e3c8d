"""The one record of a run: :class:`RunSpec` (the prepared arch, the task's reference with
its sizes, the training config).

The store, a predictor's metadata and a saved model's header all hold it, written by
:meth:`RunSpec.to_dict` and read by :meth:`RunSpec.from_dict`; nothing rebuilds an arch or
a task from loose keys. Records of release 0.1 (arch, task name and config apart, without
the task's sizes) are read by :meth:`RunSpec.from_release_0_1`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from topowire.compiler.arch import Arch
from topowire.data.tasks import Task, TaskRef
from topowire.errors import ParameterError
from topowire.train.config import TrainConfig

__all__ = ["RunSpec", "task_hash", "prepare_arch"]


def prepare_arch(arch: Arch, task: Task, config: TrainConfig | None = None) -> Arch:
    """The arch with the task's widths, or ParameterError if the two do not go together
    (the target decides, :meth:`~topowire.compiler.targets.Target.check_task`)."""
    if config is not None and config.stability is not None and not arch.masked_cell:
        raise ParameterError(f"stability applies to recurrent archs, not {arch.kind!r}")
    if config is not None and (config.standardize or config.augment):
        from topowire.data.transforms import check_image_task

        check_image_task(task, "standardize" if config.standardize else "augment")
    arch.target.check_task(arch, task)
    return arch.replace(d_in=task.d_in, d_out=task.d_out)


def task_hash(task: Task) -> str:
    """A short hash of a task's name and tensors (its data, whatever built them)."""
    h = hashlib.sha256(task.name.encode())
    for t in (task.x_train, task.y_train, task.len_train, task.x_test, task.y_test, task.len_test):
        if t is not None:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class RunSpec:
    """A run: what is trained, on what, how.

    Attributes
    ----------
    arch : Arch
        The arch, prepared for the task (its ``d_in`` and ``d_out`` are the task's).
    task : TaskRef
        The task's name, seed, sizes and options: :meth:`TaskRef.build` makes its data.
    train : TrainConfig
        How every model is trained.
    """

    arch: Arch
    task: TaskRef
    train: TrainConfig

    @classmethod
    def of(cls, arch: Arch, task: Task, train: TrainConfig) -> RunSpec:
        """The run of ``arch`` trained on ``task`` (built by :func:`~topowire.data.make_task`,
        which records its reference; a task built by hand is named by its sizes) with
        ``train``; ParameterError when the arch's target does not take the task."""
        ref = task.ref or TaskRef(task.name, n_train=len(task.y_train), n_test=len(task.y_test))
        return cls(prepare_arch(arch, task, train), ref, train)

    def run_id(self, task: Task) -> str:
        """The run's name: a hash of the arch, the task's data (``task``, built from
        :attr:`task`) and the training options that change results. Release 0.1's runs
        keep their ids (:meth:`~topowire.compiler.Arch.run_key`)."""
        key = {"arch": self.arch.run_key(), "task": task.name, "data": task_hash(task), "train": self.train.run_key()}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "task": self.task.to_dict(), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, d: Any) -> RunSpec:
        if not isinstance(d, dict) or set(d) != {"arch", "task", "train"}:
            got = sorted(d) if isinstance(d, dict) else repr(d)
            raise ParameterError(f"a run record holds arch, task and train, got {got}")
        return cls(Arch.from_dict(d["arch"]), TaskRef.from_dict(d["task"]), TrainConfig.from_dict(d["train"]))

    @classmethod
    def from_release_0_1(cls, arch: dict[str, Any], task: str, train: dict[str, Any]) -> RunSpec:
        """A run recorded by release 0.1: the task's sizes were not kept (its defaults are assumed)."""
        config = TrainConfig.from_dict(train)
        return cls(Arch.from_dict(arch), TaskRef(task, seed=config.seed), config)

    @classmethod
    def from_record(cls, run: dict[str, Any]) -> RunSpec:
        """The run of a store's record (:meth:`topowire.store.Store.run`), of either release."""
        if run.get("spec") is not None:
            return cls.from_dict(run["spec"])
        return cls.from_release_0_1(run["arch"], run["task"], run["config"])

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)
