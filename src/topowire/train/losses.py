"""Per-model losses and scores of each objective: every function returns one value per model ``[P]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["per_model_loss", "per_model_correct", "step_mask", "ADDING_TOLERANCE", "Objective", "LOSSES"]

#: An adding-problem prediction counts as correct within this absolute error.
ADDING_TOLERANCE = 0.04


def step_mask(lengths: Tensor, t_max: int) -> Tensor:
    """``[B, T]`` True at real steps, False at padding."""
    return torch.arange(t_max, device=lengths.device)[None, :] < lengths[:, None]


@dataclass(frozen=True)
class Objective:
    """How one objective is scored: ``loss(out, y, mask) -> [P]`` (mean over examples) and
    ``correct(out, y, mask) -> [P]`` (examples counted right)."""

    loss: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    correct: Callable[[Tensor, Tensor, Tensor | None], Tensor]


def _ce(out, y, mask):  # out [P, B, C], y [B]
    p = out.shape[0]
    return F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.repeat(p), reduction="none").view(p, -1).mean(1)


def _bce(out, y, mask):  # out [P, B, T, C], y [B, T, C]; averaged over real steps and symbols
    bce = F.binary_cross_entropy_with_logits(out.float(), y.expand_as(out), reduction="none").mean(-1)
    m = mask.to(bce.dtype)
    return (bce * m).sum((1, 2)) / m.sum()


def _every_step_right(out, y, mask):  # a string counts when every real step is right
    ok = ((out > 0) == (y > 0.5)).all(-1) | ~mask[None]
    return ok.all(-1).sum(1)


#: Every objective of :data:`topowire.data.tasks.OBJECTIVES`, by name.
LOSSES = {
    "classification": Objective(_ce, lambda out, y, mask: (out.argmax(-1) == y).sum(1)),
    "multilabel": Objective(_bce, _every_step_right),
    "regression": Objective(lambda out, y, mask: (out.float() - y).pow(2).mean((1, 2)),
                            lambda out, y, mask: ((out.float() - y).abs() < ADDING_TOLERANCE).all(-1).sum(1)),
}


def per_model_loss(out: Tensor, y: Tensor, objective: str, mask: Tensor | None = None) -> Tensor:
    """Mean loss of every model.

    ``classification``: cross-entropy of ``out [P, B, C]`` against ``y [B]``;
    ``multilabel``: binary cross-entropy of ``out [P, B, T, C]`` against ``y [B, T, C]``,
    averaged over real steps (``mask [B, T]``) and symbols; ``regression``: mean squared
    error of ``out [P, B, 1]``.
    """
    return LOSSES[objective].loss(out, y, mask)


def per_model_correct(out: Tensor, y: Tensor, objective: str, mask: Tensor | None = None) -> Tensor:
    """Correct samples of every model (a string in ``multilabel`` needs every step right)."""
    return LOSSES[objective].correct(out, y, mask)
