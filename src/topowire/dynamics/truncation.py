"""Truncation: a recurrent model on only its last k inputs, and its feed-forward unrolling.

Miller & Hardt show that a stable recurrent model is well approximated by its k-truncation
(the same model run on the last k inputs from a zero state), with an error that decays
geometrically in k. :func:`truncated_forward` evaluates the truncation; :func:`unroll`
compiles a recurrent wiring into the equivalent depth-k feed-forward network -- a
:class:`~topowire.compiler.Sequential2D` whose k hidden blocks share one set of weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from topowire import checks
from topowire.compiler.cells import CELLS
from topowire.compiler.sequential2d import Sequential2D
from topowire.compiler.targets.recurrent import MaskedRecurrentNet
from topowire.errors import ParameterError

__all__ = ["last_inputs", "truncated_forward", "unroll", "UNROLLABLE"]

#: Cells whose step is one activation of a weighted sum (an iterative-map row).
UNROLLABLE = tuple(name for name, cell in CELLS.items() if cell.activation is not None)


def _check_k(k) -> int:
    return checks.integer("k", k, 1)


def last_inputs(x: Tensor, k: int, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """The last ``k`` real inputs of every sequence, left-aligned and padded after.

    Parameters
    ----------
    x : Tensor [B, T, d_in]
        Sequences, padded after each length.
    k : int
        Steps kept.
    lengths : Tensor [B], optional
        Real lengths (default T for all).

    Returns
    -------
    (Tensor [B, min(k, T), d_in], Tensor [B] or None)
        The truncated inputs and their lengths ``min(k, length)`` (None when no lengths
        were given).
    """
    k = _check_k(k)
    b, t = x.shape[:2]
    if lengths is None:
        return x[:, max(0, t - k):], None
    lengths = lengths.to(x.device)
    kept = lengths.clamp(max=k)
    width = min(k, t)
    pos = (lengths - kept)[:, None] + torch.arange(width, device=x.device)[None, :]  # [B, width]
    valid = torch.arange(width, device=x.device)[None, :] < kept[:, None]
    out = x.gather(1, pos.clamp(max=t - 1)[:, :, None].expand(b, width, x.shape[2]))
    return out * valid[:, :, None], kept


def truncated_forward(module: nn.Module, x: Tensor, k: int, lengths: Tensor | None = None) -> Tensor:
    """``module`` run from a zero state on the last ``k`` real inputs of every sequence."""
    xk, lk = last_inputs(x, k, lengths)
    return module(xk) if lk is None else module(xk, lk)


class _TiedInput(nn.Module):
    """Step j's input block: ``(W_ih * M_in) x_j + b_ih + b_hh`` on slice j of the flat input."""

    def __init__(self, net: MaskedRecurrentNet, j: int) -> None:
        super().__init__()
        self.net, self.j = [net], j  # a list: keep the net out of this module's children

    def forward(self, flat: Tensor) -> Tensor:
        net = self.net[0]
        d = net.arch.d_in
        x = flat[:, self.j * d:(self.j + 1) * d]
        return nn.functional.linear(x, net.w_ih * net.in_mask[:, None], net.b_ih + net.b_hh)


class _TiedRecurrent(nn.Module):
    """``(W_hh * M) h`` with the recurrent net's own weights."""

    def __init__(self, net: MaskedRecurrentNet) -> None:
        super().__init__()
        self.net = [net]

    def forward(self, h: Tensor) -> Tensor:
        return h @ self.net[0].effective_weight().T


class _TiedReadout(nn.Module):
    def __init__(self, net: MaskedRecurrentNet) -> None:
        super().__init__()
        self.net = [net]

    def forward(self, h: Tensor) -> Tensor:
        net = self.net[0]
        return nn.functional.linear(h, net.readout * net.out_mask[None, :], net.readout_bias)


class _Unrolled(Sequential2D):
    """A Sequential2D whose blocks read a recurrent net's parameters (registered once, here)."""

    def __init__(self, net: MaskedRecurrentNet, k: int) -> None:
        n, d, o = net.wiring.n_neurons, net.arch.d_in, net.arch.d_out
        sizes = [k * d] + [n] * k + [o]
        grid: list[list[nn.Module | None]] = [[None] * (k + 2) for _ in range(k + 2)]
        for j in range(1, k + 1):
            grid[j][0] = _TiedInput(net, j - 1)
            if j > 1:
                grid[j][j - 1] = _TiedRecurrent(net)
        grid[k + 1][k] = _TiedReadout(net)
        act = CELLS[net.arch.kind].activation
        super().__init__(grid, sizes, [act] * k + ["identity"], iterations=k + 1, bias=False)
        self.recurrent = net  # the shared parameters: one copy, trained through either module


def unroll(net: MaskedRecurrentNet, k: int) -> Sequential2D:
    """Compile a recurrent model into a depth-k feed-forward iterative network.

    The result is a :class:`~topowire.compiler.Sequential2D` with blocks
    ``[x_1..x_k (flat), h_1, ..., h_k, out]``: ``h_j = act((W_ih*M_in) x_j + b + (W_hh*M) h_{j-1})``,
    every step sharing the net's parameters (changing one changes the other), and
    ``K = k + 1`` Jacobi iterations. On ``x[:, -k:].flatten(1)`` it equals
    ``truncated_forward(net, x, k)``.

    Parameters
    ----------
    net : MaskedRecurrentNet
        An ``rnn-tanh`` or ``rnn-relu`` model (gated cells are not a weighted sum under
        one activation, so they have no iterative-map form).
    k : int
        Depth.
    """
    k = _check_k(k)
    if not isinstance(net, MaskedRecurrentNet) or CELLS[net.arch.kind].activation is None:
        kind = getattr(getattr(net, "arch", None), "kind", type(net).__name__)
        raise ParameterError(f"unroll() takes an {' or '.join(UNROLLABLE)} MaskedRecurrentNet, got {kind!r}")
    return _Unrolled(net, k)
