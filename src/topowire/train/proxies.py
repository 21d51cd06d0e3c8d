"""Cheap proxies of trained performance, measured on the packed models themselves.

Graph features describe the wiring alone; these look at the network the trainer builds
for each topology (replicate 0 under the training seed, exactly as it is trained) at a
fraction of the cost of training it:

- :func:`init_proxies` (the ``init`` model feature group): the loss on one batch of
  training data at initialisation and the norm of its gradient (all parameters of the
  model) -- one forward and one backward pass per pack.
- :func:`early_proxies`: test loss and accuracy after a fraction of the training budget
  (trained packed, on the first examples of the training set, with the run's options).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd
import torch

from topowire.compiler.arch import Arch
from topowire.compiler.compile import pack
from topowire.data.tasks import Task
from topowire.seeds import model_seeds
from topowire.topology.topology import Topology
from topowire.train.config import TrainConfig
from topowire.train.losses import per_model_loss

__all__ = ["INIT_PROXIES", "init_proxies", "early_proxies"]

INIT_PROXIES = ("init_loss", "init_grad_norm")


def _packs(topologies: Sequence[Topology], arch: Arch, task: Task, seed: int, chunk: int):
    arch = arch.replace(d_in=task.d_in, d_out=task.d_out)
    unique = list({t.id: t for t in topologies}.values())
    for start in range(0, len(unique), chunk):
        part = unique[start:start + chunk]
        packed = pack(part, arch, [s for _, _, s in model_seeds(seed, [t.id for t in part])])
        yield part, packed, (min(start + chunk, len(unique)), len(unique))


def init_proxies(topologies: Sequence[Topology], arch: Arch, task: Task, *, seed: int = 0, batch: int = 64,
                 chunk: int = 64, progress=None) -> pd.DataFrame:
    """``init_loss`` and ``init_grad_norm`` of every topology's model, indexed by topology id.

    The batch is the first ``batch`` training examples; the gradient norm is over all the
    model's parameters (padding contributes nothing: its gradients are zero).
    """
    from topowire.train.trainer import task_batch, task_forward

    xb, yb, lb, mask = task_batch(task, "train", torch.arange(min(batch, len(task.y_train))), torch.device("cpu"))
    frames = []
    for part, packed, done in _packs(topologies, arch, task, seed, chunk):
        losses = per_model_loss(task_forward(packed, task, xb, lb), yb, task.objective, mask)
        losses.sum().backward()
        p = len(packed)
        sq = sum(t.grad.reshape(p, -1).pow(2).sum(1) for t in packed.parameters() if t.grad is not None)
        frames.append(pd.DataFrame({"init_loss": losses.detach().numpy(), "init_grad_norm": sq.sqrt().numpy()},
                                   index=pd.Index([t.id for t in part], name="id")))
        if progress is not None:
            progress(*done)
    return pd.concat(frames)


def early_proxies(topologies: Sequence[Topology], arch: Arch, task: Task, config: TrainConfig, fraction: float, *,
                  chunk: int = 64, progress=None) -> pd.DataFrame:
    """Test loss and accuracy after ``fraction`` of the training budget of ``config``.

    The budget is ``config.epochs`` passes over the training set; a fraction ``f`` trains
    ``ceil(f * epochs)`` passes over the first ``f * epochs / ceil(f * epochs)`` of it.
    Columns ``early<f>_loss``, ``early<f>_acc`` (``f`` as written by ``format(f, 'g')``).
    """
    from topowire.train.trainer import train_pack

    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    epochs = math.ceil(fraction * config.epochs)
    n = max(1, round(len(task.y_train) * fraction * config.epochs / epochs))
    part_task = replace(task, x_train=task.x_train[:n], y_train=task.y_train[:n],
                        len_train=None if task.len_train is None else task.len_train[:n])
    short = config.replace(epochs=epochs)
    name = f"early{fraction:g}"
    frames = []
    for part, packed, done in _packs(topologies, arch, task, config.seed, chunk):
        rows = train_pack(packed, part_task, short)
        frames.append(pd.DataFrame({f"{name}_loss": [r["test_loss"] for r in rows],
                                    f"{name}_acc": [r["test_acc"] for r in rows]},
                                   index=pd.Index([t.id for t in part], name="id")))
        if progress is not None:
            progress(*done)
    return pd.concat(frames)
