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
from pathlib import Path

import torch
from torch import Tensor

from topowire.compiler.cells import CELLS

__all__ = ["input_mask", "masked_recurrent_weights", "readout", "readout_weights", "readout_all_steps", "graph_step",
           "fused_steps", "fused_program", "input_projection", "symbol_table", "sub_packs", "sub_pack_size",
           "over_sub_packs", "cache_bytes", "reads_are_free"]


def reads_are_free(device: torch.device) -> bool:
    """Whether reading a tensor on ``device`` back to Python costs nothing: on the CPU. On an
    accelerator it would stall the device, so nothing in a training step reads one back."""
    return device.type == "cpu"


def masked_recurrent_weights(w: Tensor, mask: Tensor) -> Tensor:
    """``[P, G*N, M]`` weights times a ``[P, N, M]`` mask tiled per gate as whole blocks."""
    p, gn, m = w.shape
    n = mask.shape[1]
    return (w.view(p, gn // n, n, m) * mask[:, None]).view(p, gn, m)


def input_mask(in_mask: Tensor, ih_mask: Tensor | None, d_in: int) -> Tensor:
    """The ``[P, N, d_in]`` mask of an input projection: input neurons, times pruning."""
    m = in_mask[:, :, None].expand(*in_mask.shape, d_in)
    return m if ih_mask is None else m * ih_mask


def readout_weights(r: Tensor, r_mask: Tensor) -> Tensor:
    """The readout's weights ``r [P, O, N]`` on the output neurons ``r_mask [P, N]`` alone."""
    return r * r_mask[:, None, :]


def readout(h: Tensor, r: Tensor, r_mask: Tensor, b_out: Tensor) -> Tensor:
    """The readout of the output neurons: h ``[P, B, N]``, r ``[P, O, N]``, r_mask ``[P, N]`` -> ``[P, B, O]``.

    States stored unit-major (the sequence kernels': lanes contiguous) are read as
    ``[P, N, B]`` matrices, the product ``[P, O, B]`` and its transposed view returned: as
    ``[P, B, N]`` the product's forward and backward took 4x as long at batch 128 (2.9 vs 0.7
    ms a step for 64 models with the loss; AMD EPYC, one thread).
    """
    w = readout_weights(r, r_mask)
    if h.stride(1) == 1 and h.stride(2) != 1:
        return torch.baddbmm(b_out[:, :, None], w, h.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(b_out[:, None, :], h, w.transpose(1, 2))


def readout_all_steps(states: Tensor, r: Tensor, r_mask: Tensor, b_out: Tensor) -> Tensor:
    """The readout at every step: states ``[P, B, T, N]`` -> ``[P, B, T, O]``. States stored step
    by step (the kernels': a transposed view of ``[P, T, B, N]``) are read in place, and the
    (small) output is the transposed view."""
    p, b, t, n = states.shape
    if states.stride(1) < states.stride(2):  # time-major
        return readout(states.transpose(1, 2).reshape(p, t * b, n), r, r_mask, b_out).view(p, t, b, -1).transpose(1, 2)
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


def one_hot_symbols(x: Tensor) -> Tensor | None:
    """The symbol of every step of ``x [B, T, d]`` when each row is one-hot or all zero
    (padding; symbol ``d``), else None. Reads ``x`` on the host: None on an accelerator."""
    if x.device.type != "cpu" or not x.dtype.is_floating_point or x.numel() == 0:
        return None
    total = x.sum(-1)
    if not bool(((x == 0) | (x == 1)).all()) or not bool((total <= 1).all()):
        return None
    return torch.where(total == 0, x.shape[-1], x.argmax(-1))


def input_projection(x: Tensor, w_ih_t: Tensor, bias_ih: Tensor) -> Callable[[int], Tensor]:
    """``t -> x[:, t] @ W_ih.T + b_ih`` as ``[P, B, G*N]``, for ``x [B, T, d]``, ``w_ih_t
    [P, d, G*N]`` and ``bias_ih [P, 1, G*N]``.

    One-hot inputs (Reber's symbols; :func:`one_hot_symbols`) make each step a row gather
    from the table ``W_ih.T + b_ih`` (with a row of ``b_ih`` alone for padding), one pass
    over the output instead of a product of inner size ``d`` and a bias add; the values
    are the same, since every other term of the product is an exact zero. Other inputs:
    one ``baddbmm`` per step (made step by step: a precomputed ``[P, T, B, G*N]`` tensor
    would cost a full-size zero-filled gradient per step in the backward pass).
    """
    p, d, _ = w_ih_t.shape
    b = x.shape[0]
    symbols = one_hot_symbols(x)
    if symbols is None:
        return lambda t: torch.baddbmm(bias_ih, x[:, t].expand(p, b, d), w_ih_t)
    table = symbol_table(w_ih_t, bias_ih)
    return lambda t: table.index_select(1, symbols[:, t])


def symbol_table(w_ih_t: Tensor, bias_ih: Tensor) -> Tensor:
    """``W_ih.T + b_ih`` with a last row of ``b_ih`` alone (padding): ``[P, d + 1, G*N]``."""
    return torch.cat([w_ih_t + bias_ih, bias_ih], dim=1)


#: Bytes of each cache level (per-core L2, shared L3) assumed when the OS does not report it.
DEFAULT_CACHE = {2: 2**20, 3: 2**24}
_SUB_PACK = contextvars.ContextVar("topowire_sub_pack", default=None)


@contextlib.contextmanager
def sub_packs(size: int | None):
    """Inside, a recurrent pack on the CPU runs its time loop over sub-packs of ``size``
    models (0: the whole pack as one program; None: sized to the cache on the torch path,
    the whole pack on the sequence kernels, :func:`sub_pack_size`). Results are the same
    whatever the size: the models are independent."""
    token = _SUB_PACK.set(size)
    try:
        yield
    finally:
        _SUB_PACK.reset(token)


@functools.cache
def cache_bytes(level: int = 2, root: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """This machine's cache of ``level`` in bytes (the L2 per core, the L3 shared), as the OS
    reports it (Linux sysfs); :data:`DEFAULT_CACHE` when it does not."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    for index in sorted(Path(root).glob("index*")):
        try:
            if (index / "level").read_text().strip() == str(level):
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
        except (OSError, ValueError):
            break
    return DEFAULT_CACHE[level]


def sub_pack_size(p: int, b: int, gn: int, device: torch.device, by_cache: bool = True) -> int:
    """Models per sub-pack for a pack of ``p`` models at batch ``b`` with ``gn`` gate units
    (G*N): the size set by :func:`sub_packs`, else -- on the CPU, ``by_cache`` -- as many
    models as keep one ``[models, B, G*N]`` float32 gate tensor within the L2 cache (at least
    one), so a time step's working set stays in cache; the whole pack on an accelerator, when
    set to 0, or when unset and not ``by_cache`` (the sequence kernels, which run a pack
    model by model already)."""
    size = _SUB_PACK.get()
    if size == 0 or device.type != "cpu" or (size is None and not by_cache):
        return p
    if size is None:
        size = cache_bytes(2) // (b * gn * 4)
    return max(1, min(p, size))


def over_sub_packs(fn: Callable, per_model: dict, size: int):
    """``fn(**chunk)`` on every sub-pack of ``size`` models, the results (a tensor, or a tuple
    of them) concatenated on the model axis. ``per_model`` maps names to ``[P, ...]``
    tensors, tuples of them, or None. Split with ``torch.split``, whose backward is one
    concatenation per tensor (slicing would build a full-size zero gradient per slice)."""
    p = next(v for v in per_model.values() if isinstance(v, Tensor)).shape[0]
    if size >= p:
        return fn(**per_model)
    count = -(-p // size)

    def parts(v):
        if v is None:
            return [None] * count
        if isinstance(v, tuple):
            return list(zip(*(torch.split(u, size) for u in v)))
        return torch.split(v, size)

    split = {k: parts(v) for k, v in per_model.items()}
    outs = [fn(**{k: v[i] for k, v in split.items()}) for i in range(count)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(o) for o in zip(*outs))
    return torch.cat(outs)


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
