"""Stable recurrent models (Miller & Hardt, "Stable Recurrent Models", ICLR 2019).

A recurrent model is kept stable by bounding the spectral norm of its masked recurrent
weights: after every optimizer step each model's ``W_hh * M`` is *rescaled* so that
``||W_hh * M||_2 <= lam``. Rescaling multiplies the whole matrix by one factor, so masked
entries stay exactly zero (an SVD clip of the singular values would fill them in).

- ``rnn-tanh`` / ``rnn-relu``: the map ``h -> act(W h + U x + b)`` is ``lam``-contractive
  when ``||W||_2 <= lam < 1`` (the activation is 1-Lipschitz) -- the paper's condition.
- ``lstm`` / ``gru``: every gate block ``W_g * M`` is rescaled on its own to
  ``||W_g * M||_2 <= lam``. This bounds the recurrent coupling of each gate, which is the
  part of the paper's sufficient condition for the LSTM that is a constraint on the recurrent
  matrices; the rest of it (the forget gate bounded away from 1 along the data) depends on
  inputs and biases and is *not* enforced -- measure it with
  :func:`topowire.dynamics.lyapunov_spectrum` instead.
- ``wcrnn``: the coupling ``W`` is bounded; the residual R is fixed by the arch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from topowire import checks
from topowire.compiler.functional import masked_recurrent_weights
from topowire.compiler.modules import stacked
from topowire.errors import ParameterError

__all__ = ["recurrent_blocks", "spectral_norms", "project_stable", "check_stability"]


def check_stability(lam) -> float:
    """``lam`` as a float, or ParameterError unless it is a finite number in (0, 1]."""
    return checks.check("stability", lam)


def _stacked(module: nn.Module) -> tuple[Tensor, Tensor]:
    """The raw recurrent weight ``[P, G*N, N]`` (a view of the parameter) and its mask ``[P, N, N]``."""
    arch = getattr(module, "arch", None)
    if arch is None or not arch.masked_cell:
        raise ParameterError(f"stability applies to masked recurrent models, got {type(module).__name__}"
                             + (f" of kind {arch.kind!r}" if arch is not None else ""))
    if getattr(module, "backend", "dense") != "dense" or not hasattr(module, "w_hh"):
        raise ParameterError("stability needs the dense backend (the masked W_hh as a matrix)")
    return stacked(module, "w_hh"), stacked(module, "mask")


def recurrent_blocks(module: nn.Module) -> Tensor:
    """The masked recurrent weights as ``[P, G, N, N]`` (P = 1 for a standalone module)."""
    w, mask = _stacked(module)
    p, gn, n = w.shape
    return masked_recurrent_weights(w.detach(), mask).view(p, gn // n, n, n)


def spectral_norms(module: nn.Module) -> Tensor:
    """``||W_g * M||_2`` of every model and gate block, ``[P, G]``."""
    return torch.linalg.matrix_norm(recurrent_blocks(module), ord=2)


@torch.no_grad()
def project_stable(module: nn.Module, lam: float, models: Tensor | None = None) -> Tensor:
    """Rescale every gate block with ``||W_g * M||_2 > lam`` to norm ``lam``, in place.

    Parameters
    ----------
    module : MaskedRecurrentNet or PackedPopulation
        A dense masked recurrent model or pack.
    lam : float
        The bound, in (0, 1].
    models : Tensor [P] of bool, optional
        Only these models of a pack (default all).

    Returns
    -------
    Tensor [P, G]
        The norms before the projection.
    """
    lam = check_stability(lam)
    norms = spectral_norms(module)
    scale = (lam / norms.clamp_min(1e-30)).clamp(max=1.0)
    if models is not None:
        scale = torch.where(models.to(scale.device)[:, None], scale, torch.ones_like(scale))
    w, _ = _stacked(module)
    p, gn, n = w.shape
    w.view(p, gn // n, n, n).mul_(scale[:, :, None, None].to(w.dtype))
    return norms
