"""The numeric core of every compiled network, written once for a leading model axis P.

A standalone module calls these with its tensors viewed as P = 1; a packed population
calls them with P stacked models. Shapes: N neurons, G gates, B batch, T steps.

Masked weights are applied as ``W * mask`` inside the forward pass, so masked entries
contribute nothing and receive exactly zero gradient. The recurrent mask ``[P, N, N]`` is
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

from topowire.compiler.wcrnn import wcrnn_cell

__all__ = ["ACTIVATIONS", "GATES", "TORCH_CELLS", "input_mask", "iterative_forward",
           "recurrent_forward", "masked_recurrent_weights", "readout_all_steps", "fused_steps"]

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}

#: Gates per recurrent cell kind, stacked like torch (LSTM i, f, g, o; GRU r, z, n).
#: ``wcrnn`` is the weakly coupled residual cell ``h <- R h + gamma tanh(W h + U x + b)``.
GATES = {"rnn-tanh": 1, "rnn-relu": 1, "lstm": 4, "gru": 3, "wcrnn": 1}

#: The cells of torch.nn (usable inside the layered form).
TORCH_CELLS = ("rnn-tanh", "rnn-relu", "lstm", "gru")


def masked_recurrent_weights(w: Tensor, mask: Tensor) -> Tensor:
    """``[P, G*N, M]`` weights times a ``[P, N, M]`` mask tiled per gate as whole blocks."""
    p, gn, m = w.shape
    n = mask.shape[1]
    return (w.view(p, gn // n, n, m) * mask[:, None]).view(p, gn, m)


def _readout(h: Tensor, r: Tensor, r_mask: Tensor, b_out: Tensor) -> Tensor:
    # h [P, B, N], r [P, O, N], r_mask [P, N] -> [P, B, O]
    return torch.baddbmm(b_out[:, None, :], h, (r * r_mask[:, None, :]).transpose(1, 2))


def readout_all_steps(states: Tensor, r: Tensor, r_mask: Tensor, b_out: Tensor) -> Tensor:
    """The readout at every step: states ``[P, B, T, N]`` -> ``[P, B, T, O]``."""
    p, b, t, n = states.shape
    return _readout(states.reshape(p, b * t, n), r, r_mask, b_out).view(p, b, t, -1)


def iterative_forward(
    x: Tensor, w: Tensor, mask: Tensor, u: Tensor, in_mask: Tensor, b: Tensor,
    r: Tensor, out_mask: Tensor, b_out: Tensor, iterations: int, activation: str,
    graph_op: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Neuron-level iterative map ``z <- act((W*M) z + (U*M_in) x + b)``, K Jacobi steps.

    Parameters
    ----------
    x : Tensor [B, d_in]
        One input batch, shared by all P models.
    w, mask : Tensor [P, N, N]
        Weights and mask, ``mask[p, v, u] = 1`` iff ``u -> v``.
    u : Tensor [P, N, d_in]; in_mask : Tensor [P, N]
        Input projection and the input neurons.
    b : Tensor [P, N]
        Neuron biases.
    r : Tensor [P, O, N]; out_mask : Tensor [P, N]; b_out : Tensor [P, O]
        Readout from the output neurons.
    iterations : int
        K; a DAG of depth D is exact with K = D + 1.
    activation : str
        A key of :data:`ACTIVATIONS`.
    graph_op : callable, optional
        For a single model (P = 1) on a sparse backend: ``z [B, N] -> z @ W.T``, used
        instead of ``w`` and ``mask`` (which are then ignored).

    Returns
    -------
    Tensor [P, B, O]
    """
    act = ACTIVATIONS[activation]
    p = u.shape[0]
    b_in, d_in = x.shape
    u_eff = u * in_mask[:, :, None]
    drive = (x @ u_eff.reshape(-1, d_in).T).view(b_in, p, -1).transpose(0, 1) + b[:, None, :]
    step = _graph_step(w, mask, graph_op, gates=1)
    z = act(drive)
    for _ in range(iterations - 1):
        z = act(step(drive, z))
    return _readout(z, r, out_mask, b_out)


def recurrent_forward(
    kind: str, x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
    mask: Tensor, in_mask: Tensor, r: Tensor, out_mask: Tensor, b_out: Tensor,
    lengths: Tensor | None = None, return_states: bool = False,
    graph_op: Callable[[Tensor], Tensor] | None = None,
    residual: tuple[Tensor, Tensor] | None = None, gamma: float = 1.0, ih_mask: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Masked recurrent cells over a shared sequence batch, read out at the last real step.

    Parameters
    ----------
    kind : {"rnn-tanh", "rnn-relu", "lstm", "gru", "wcrnn"}
        Cell equations (identical to ``torch.nn.RNN`` / ``LSTM`` / ``GRU``; ``wcrnn`` is
        ``h <- R h + gamma tanh(W_ih x + b_ih + (W_hh*M) h + b_hh)``).
    x : Tensor [B, T, d_in]
        Input sequences, shared by all P models (padded after each length).
    w_ih : Tensor [P, G*N, d_in]; w_hh : Tensor [P, G*N, N]; b_ih, b_hh : Tensor [P, G*N]
        Gate-stacked weights and biases.
    mask : Tensor [P, N, N]; in_mask : Tensor [P, N]
        Recurrent mask (``mask[p, v, u] = 1`` iff ``u -> v``) and the input neurons.
    r, out_mask, b_out
        Readout as in :func:`iterative_forward`.
    lengths : Tensor [B], optional
        Real length of every sequence; the state stops updating after it, so the readout
        sees the last real step, never a padding step.
    return_states : bool, default False
        Also return every hidden state, ``[P, B, T, N]``.
    graph_op : callable, optional
        As in :func:`iterative_forward`: ``h [B, N] -> h @ W_hh.T`` for a single model on
        a sparse backend (``w_hh`` and ``mask`` are then ignored).
    residual : (Tensor [P, N], Tensor [P, N]), optional
        ``wcrnn`` only: R as its diagonal and pair coupling (see :mod:`topowire.compiler.wcrnn`).
    gamma : float, default 1.0
        ``wcrnn`` only: the coupling strength.
    ih_mask : Tensor [P, N, d_in], optional
        Per-connection input mask (pruning), multiplied with ``in_mask``.

    Returns
    -------
    Tensor [P, B, O] (and the states when asked)
    """
    p, gn, d_in = w_ih.shape
    n = in_mask.shape[1]
    gates = gn // n
    b, t_steps, _ = x.shape
    w_ih_eff = masked_recurrent_weights(w_ih, input_mask(in_mask, ih_mask, d_in))
    # The input projection is made step by step, straight in the [P, B, G*N] layout: a
    # precomputed [P, T, B, G*N] tensor would cost a full-size zero-filled gradient per
    # step in the backward pass (select's backward), O(T^2) memory traffic.
    w_ih_t = w_ih_eff.transpose(1, 2)  # [P, d_in, G*N]
    bias_ih = b_ih[:, None, :]
    step = _graph_step(w_hh, mask, graph_op, gates)  # masked, transposed weights hoisted (eager steps)
    bias_hh = b_hh[:, None, :]
    h = x.new_zeros(p, b, n)
    c = x.new_zeros(p, b, n) if kind == "lstm" else None
    states = []
    # before the shortest sequence ends every state updates: no masking needed
    first_mask = int(lengths.min()) if lengths is not None else t_steps
    residual = None if residual is None else tuple(r[:, None, :] for r in residual)  # [P, 1, N]
    fused = _step_program() if _FUSED.get() and graph_op is None else None
    w_hh_t = masked_recurrent_weights(w_hh, mask).transpose(1, 2) if fused is not None else None
    for t in range(t_steps):
        if fused is not None:
            h_new, c_new = fused(kind, x[:, t], h, c, bias_ih, w_ih_t, bias_hh, w_hh_t, gates, residual, gamma)
        else:
            gx = torch.baddbmm(bias_ih, x[:, t].expand(p, b, d_in), w_ih_t)  # [P, B, G*N], no transpose
            gh = step(bias_hh, h)
            h_new, c_new = _cell(kind, gx, gh, h, c, gates, residual, gamma)
        if t >= first_mask:
            alive = (t < lengths).view(1, b, 1)
            h_new = torch.where(alive, h_new, h)
            if c is not None:
                c_new = torch.where(alive, c_new, c)
        h, c = h_new, c_new
        if return_states:
            states.append(h)
    out = _readout(h, r, out_mask, b_out)
    if return_states:
        return out, torch.stack(states, dim=2)
    return out


def input_mask(in_mask: Tensor, ih_mask: Tensor | None, d_in: int) -> Tensor:
    """The ``[P, N, d_in]`` mask of the input projection: input neurons, times pruning."""
    m = in_mask[:, :, None].expand(*in_mask.shape, d_in)
    return m if ih_mask is None else m * ih_mask


def _graph_step(w: Tensor | None, mask: Tensor | None, graph_op, gates: int):
    """``(bias [P, B|1, G*N], h [P, B, N]) -> bias + h @ (W*M).T`` with the weights prepared once."""
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
                bias_hh: Tensor, w_hh_t: Tensor, gates: int, residual, gamma: float):
    p, b, _ = h.shape
    gx = torch.baddbmm(bias_ih, xt.expand(p, b, xt.shape[-1]), w_ih_t)
    gh = torch.baddbmm(bias_hh, h, w_hh_t)
    return _cell(kind, gx, gh, h, c, gates, residual, gamma)


@functools.cache
def _compiled_step():
    # one graph per cell kind, grad mode and state layout: more than dynamo's default of 8
    # recompilations before it silently gives up on a function
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(_dense_step, dynamic=True)


_EAGER_ONLY: list[str] = []  # why compiling failed, once per process


def _step_program():
    """The compiled step, or the eager one once compiling has failed in this process."""
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


def _cell(kind: str, gx: Tensor, gh: Tensor, h: Tensor, c: Tensor | None, gates: int,
          residual: tuple[Tensor, Tensor] | None = None, gamma: float = 1.0):
    if kind == "wcrnn":
        return wcrnn_cell(gx, gh, h, residual, gamma), None
    if kind == "rnn-tanh":
        return torch.tanh(gx + gh), None
    if kind == "rnn-relu":
        return torch.relu(gx + gh), None
    if kind == "lstm":
        i, f, g, o = (gx + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if kind == "gru":
        xr, xz, xn = gx.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        rg = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        nn_ = torch.tanh(xn + rg * hn)
        return (1 - z) * nn_ + z * h, None
    raise ValueError(f"unknown cell kind {kind!r}")
