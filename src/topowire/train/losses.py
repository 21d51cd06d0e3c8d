"""Per-model losses and scores: every function returns one value per model ``[P]``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["per_model_loss", "per_model_correct", "step_mask", "ADDING_TOLERANCE"]

#: An adding-problem prediction counts as correct within this absolute error.
ADDING_TOLERANCE = 0.04


def step_mask(lengths: Tensor, t_max: int) -> Tensor:
    """``[B, T]`` True at real steps, False at padding."""
    return torch.arange(t_max, device=lengths.device)[None, :] < lengths[:, None]


def per_model_loss(out: Tensor, y: Tensor, kind: str, mask: Tensor | None = None) -> Tensor:
    """Mean loss of every model.

    ``classification``: cross-entropy of ``out [P, B, C]`` against ``y [B]``;
    ``multilabel``: binary cross-entropy of ``out [P, B, T, C]`` against ``y [B, T, C]``,
    averaged over real steps (``mask [B, T]``) and symbols; ``regression``: mean squared
    error of ``out [P, B, 1]``.
    """
    p = out.shape[0]
    if kind == "classification":
        ce = F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.repeat(p), reduction="none")
        return ce.view(p, -1).mean(1)
    if kind == "multilabel":
        bce = F.binary_cross_entropy_with_logits(out.float(), y.expand_as(out), reduction="none").mean(-1)
        m = mask.to(bce.dtype)
        return (bce * m).sum((1, 2)) / m.sum()
    return (out.float() - y).pow(2).mean((1, 2))


def per_model_correct(out: Tensor, y: Tensor, kind: str, mask: Tensor | None = None) -> Tensor:
    """Correct samples of every model (a string in ``multilabel`` needs every step right)."""
    if kind == "classification":
        return (out.argmax(-1) == y).sum(1)
    if kind == "multilabel":
        ok = ((out > 0) == (y > 0.5)).all(-1) | ~mask[None]
        return ok.all(-1).sum(1)
    return ((out.float() - y).abs() < ADDING_TOLERANCE).all(-1).sum(1)
