"""Numeric pieces every compiled network shares, written once for a leading model axis P.

A standalone module calls them with its tensors viewed as P = 1; a packed population calls
them with P stacked models. Shapes: N neurons, G gates, B batch, T steps.

Masked weights are applied as ``W * mask`` inside the forward pass, so masked entries
contribute nothing and receive exactly zero gradient. A recurrent mask ``[P, N, N]`` is
tiled per gate as whole blocks (``W.view(P, G, N, N) * mask[:, None]``, the same as
``mask.repeat(G, 1)``): gate g's rows ``g*N:(g+1)*N`` carry the graph's mask. Interleaving
rows instead (``np.repeat(mask, G, 0)``) scrambles the topology, a bug of prior work.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from topowire.compiler.cells import CELLS

__all__ = ["input_mask", "masked_recurrent_weights", "readout", "readout_all_steps", "graph_step", "fused_steps",
           "fused_program"]


def masked_recurrent_weights(w: Tensor, mask: Tensor) -> Tensor:
    """``[P, G*N, M]`` weights times a ``[P, N, M]`` mask tiled per gate as whole blocks."""
    p, gn, m = w.shape
    n = mask.shape[1]
    return (w.view(p, gn // n, n, m) * mask[:, None]).view(p, gn, m)


def input_mask(in_mask: Tensor, ih_mask: Tensor | None, d_in: int) -> Tensor:
    """The ``[P, N, d_in]`` mask of an input projection: input neurons, times pruning."""
    m = in_mask[:, :, None].expand(*in_mask.shape, d_in)
    return m if ih_mask is None else m * ih_mask


def readout(h: Tensor, r: Tensor, r_mask: Tensor, b_out: Tensor) -> Tensor:
    """The readout of the output neurons: h ``[P, B, N]``, r ``[P, O, N]``, r_mask ``[P, N]`` -> ``[P, B, O]``."""
    return torch.baddbmm(b_out[:, None, :], h, (r * r_mask[:, None, :]).transpose(1, 2))


def readout_all_steps(states: Tensor, r: Tensor, r_mask: Tensor, b_out: Tensor) -> Tensor:
    """The readout at every step: states ``[P, B, T, N]`` -> ``[P, B, T, O]``."""
    p, b, t, n = states.shape
    return readout(states.reshape(p, b * t, n), r, r_mask, b_out).view(p, b, t, -1)


def graph_step(w: Tensor | None, mask: Tensor | None, graph_op: Callable[[Tensor], Tensor] | None, gates: int):
    """``(bias [P, B|1, G*N], h [P, B, N]) -> bias + h @ (W*M).T`` with the weights prepared once.

    ``graph_op`` (a single model on a sparse backend): ``h [B, N] -> h @ W.T`` instead of
    ``w`` and ``mask``, which are then ignored.
    """
    if graph_op is not None:
        return lambda bias, h: bias + graph_op(h[0])[None]
    w_t = masked_recurrent_weights(w, mask).transpose(1, 2)
    return lambda bias, h: torch.baddbmm(bias, h, w_t)


_FUSED = contextvars.ContextVar("topowire_fused_steps", default=False)


@contextlib.contextmanager
def fused_steps(enabled: bool = True):
    """Inside, every dense recurrent forward runs its time step -- both projections and the
    cell -- as one program compiled by ``torch.compile`` (compiled once per process, shapes
    dynamic). Where compiling fails (no C++ compiler, an unsupported platform) it warns once
    and runs eagerly. Results equal the eager path to float rounding."""
    token = _FUSED.set(bool(enabled))
    try:
        yield
    finally:
        _FUSED.reset(token)


def _dense_step(kind: str, xt: Tensor, h: Tensor, c: Tensor | None, bias_ih: Tensor, w_ih_t: Tensor,
                bias_hh: Tensor, w_hh_t: Tensor, residual, gamma: float):
    p, b, _ = h.shape
    gx = torch.baddbmm(bias_ih, xt.expand(p, b, xt.shape[-1]), w_ih_t)
    gh = torch.baddbmm(bias_hh, h, w_hh_t)
    return CELLS[kind].step(gx, gh, h, c, residual, gamma)


@functools.cache
def _compiled_step():
    # one graph per cell kind, grad mode and state layout: more than dynamo's default of 8
    # recompilations before it silently gives up on a function
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(_dense_step, dynamic=True)


_EAGER_ONLY: list[str] = []  # why compiling failed, once per process


def fused_program():
    """Inside :func:`fused_steps`, the compiled dense step ``(kind, x_t, h, c, bias_ih, w_ih_t,
    bias_hh, w_hh_t, residual, gamma) -> (h', c')`` (the eager one once compiling has failed
    in this process); outside it, None."""
    if not _FUSED.get():
        return None
    if _EAGER_ONLY:
        return _dense_step
    compiled = _compiled_step()

    def run(*args):
        if _EAGER_ONLY:
            return _dense_step(*args)
        try:
            return compiled(*args)
        except Exception as exc:  # a missing compiler surfaces at the first call
            _EAGER_ONLY.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
            warnings.warn(f"fused steps unavailable, running eagerly ({_EAGER_ONLY[0]})", RuntimeWarning,
                          stacklevel=2)
            return _dense_step(*args)

    return run
