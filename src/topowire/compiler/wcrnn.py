"""The weakly coupled residual RNN (arXiv 2307.14823), in one place.

``h <- R h + gamma tanh(W_ih x + b_ih + (W_hh*M) h + b_hh)`` with R fixed: homogeneous
``r I``, rotational ``r [[cos phi, -sin phi], [sin phi, cos phi]]`` on neuron pairs, or
heterogeneous ``r_i``. R is held as two vectors, its diagonal and its pair coupling
(``R[v, v] = diag[v]``, ``R[v, v ^ 1] = pair[v]``), stored as the buffers ``res_diag`` and
``res_pair`` of a module (``[N]``) or a pack (``[P, N_max]``, zero on padding).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # arch imports the functional core, which imports this module
    from topowire.compiler.arch import Arch

__all__ = ["residual_vectors", "residual_matrix", "residual_apply", "wcrnn_cell", "register_residual",
           "residual_args"]


def residual_vectors(n: int, arch: Arch, seed: int) -> tuple[Tensor, Tensor]:
    """The fixed residual matrix R of one model as (diagonal, pair coupling), [N] each.

    An odd last neuron of a rotational R gets ``r``. Heterogeneous radii
    ``r_i ~ U(r - r_spread, r + r_spread)`` are drawn from
    ``numpy.random.default_rng([seed, 0x7E5])``, a stream apart from the parameters'.
    """
    diag = torch.full((n,), float(arch.r))
    pair = torch.zeros(n)
    if arch.residual == "rotational":
        paired = n - n % 2
        diag[:paired] = arch.r * math.cos(arch.phi)
        sin = arch.r * math.sin(arch.phi)
        pair[0:paired:2] = -sin  # row 2i reads neuron 2i+1 with -r sin(phi)
        pair[1:paired:2] = sin
    elif arch.residual == "heterogeneous":
        rng = np.random.default_rng([int(seed), 0x7E5])
        diag = torch.from_numpy(rng.uniform(arch.r - arch.r_spread, arch.r + arch.r_spread, n).astype(np.float32))
    return diag, pair


def residual_matrix(n: int, arch: Arch, seed: int) -> Tensor:
    """R as a dense ``[N, N]`` matrix (for analysis; the forward pass uses the vectors)."""
    diag, pair = residual_vectors(n, arch, seed)
    r = torch.diag(diag)
    idx = torch.arange(n - n % 2)
    r[idx, idx ^ 1] = pair[idx]
    return r


def residual_apply(h: Tensor, diag: Tensor, pair: Tensor) -> Tensor:
    """``R h`` for h ``[..., N]`` and diag, pair broadcasting against it (``[P, 1, N]`` for a
    batch of states ``[P, B, N]``). Neuron v's partner is ``v ^ 1``; an odd last neuron has
    none (its ``pair`` is 0), so it reads itself."""
    n = h.shape[-1]
    v = torch.arange(n, device=h.device)
    partner = (v + 1 - 2 * (v % 2)).clamp_max(n - 1)  # v ^ 1, in ops every exporter knows
    return diag * h + pair * h.index_select(-1, partner)


def wcrnn_cell(gx: Tensor, gh: Tensor, h: Tensor, residual: tuple[Tensor, Tensor], gamma: float) -> Tensor:
    """One step from the gate pre-activations: ``R h + gamma tanh(gx + gh)``."""
    return residual_apply(h, *residual) + gamma * torch.tanh(gx + gh)


def register_residual(module: nn.Module, sizes, arch: Arch, seeds, n_max: int | None = None) -> None:
    """Register ``res_diag`` and ``res_pair`` on a wcrnn module (``n_max`` None: ``[N]``) or a
    pack (``[P, n_max]``, model p's R in its first ``sizes[p]`` entries); nothing otherwise."""
    if arch.kind != "wcrnn":
        return
    vectors = [residual_vectors(int(n), arch, int(s)) for n, s in zip(sizes, seeds)]
    if n_max is None:
        (diag, pair), = vectors
    else:
        diag, pair = torch.zeros(len(vectors), n_max), torch.zeros(len(vectors), n_max)
        for p, (d, q) in enumerate(vectors):
            diag[p, :len(d)], pair[p, :len(q)] = d, q
    module.register_buffer("res_diag", diag)
    module.register_buffer("res_pair", pair)


def residual_args(module: nn.Module) -> dict:
    """The ``residual`` and ``gamma`` arguments of the functional core for a wcrnn module or
    pack (tensors with a leading model axis); nothing for other cells."""
    if module.arch.kind != "wcrnn":
        return {}
    lead = (lambda t: t) if getattr(module, "stacked", False) else (lambda t: t[None])
    return {"residual": (lead(module.res_diag), lead(module.res_pair)), "gamma": module.arch.gamma}
