"""Recurrent cell equations, by name: one step from the gate pre-activations.

Every cell computes its new state from ``gx = W_ih x + b_ih`` and ``gh = W_hh h + b_hh``
(``[..., G*N]``, gates stacked like torch: LSTM i, f, g, o; GRU r, z, n) and the previous
state. The masked cells (:mod:`topowire.compiler.targets.recurrent`), the layered form, the
exported programs and the Lyapunov spectra all step through :data:`CELLS`, so a cell's
equations are written once. With a full mask and copied weights they reproduce
``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

``wcrnn`` is the weakly coupled residual cell of arXiv 2307.14823,
``h <- R h + gamma tanh(gx + gh)``, with R fixed and held as two vectors: its diagonal and
its pair coupling (``R[v, v] = diag[v]``, ``R[v, v ^ 1] = pair[v]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from topowire import checks

__all__ = ["Cell", "CELLS", "ACTIVATIONS", "summed_cell", "register_cell", "layer_cells", "residual_apply"]

#: Neuron activations, by name (the iterative map, unrolled cells, Sequential2D rows).
ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
checks.declare("activation", checks.Domain("choice", choices=ACTIVATIONS))


@dataclass(frozen=True)
class Cell:
    """One cell's equations.

    Attributes
    ----------
    gates : int
        Gate blocks G stacked in its weights.
    step : callable
        ``step(gx, gh, h, c, residual, gamma) -> (h', c')``; ``c`` is None but for cells
        with a memory cell (``memory``); ``residual`` and ``gamma`` are wcrnn's.
    memory : bool
        Carries a cell state ``c`` beside ``h`` (the LSTM).
    activation : str, optional
        For a cell that is one activation of a weighted sum (``rnn-*``): its name in
        :data:`ACTIVATIONS` (such a cell unrolls into an iterative map).
    residual : bool
        Needs the fixed residual matrix R and the coupling gamma (wcrnn).
    summed : callable, optional
        For a cell that reads ``gx`` and ``gh`` only as their sum (:func:`summed_cell`):
        ``summed(pre, h, c, residual, gamma)`` with ``pre = gx + gh``. The engine then adds
        ``gx`` inside the recurrent product, one pass over the gates fewer per step.
    """

    gates: int
    step: Callable[..., tuple[Tensor, Tensor | None]]
    memory: bool = False
    activation: str | None = None
    residual: bool = False
    summed: Callable[..., tuple[Tensor, Tensor | None]] | None = None


def summed_cell(gates: int, summed: Callable[..., tuple[Tensor, Tensor | None]], **options) -> Cell:
    """A :class:`Cell` whose equations read the gate pre-activations only as ``gx + gh``,
    written once as ``summed(pre, h, c, residual, gamma)``; its ``step`` adds them first."""
    return Cell(gates, lambda gx, gh, h, c, residual, gamma: summed(gx + gh, h, c, residual, gamma),
                summed=summed, **options)


def residual_apply(h: Tensor, diag: Tensor, pair: Tensor) -> Tensor:
    """``R h`` for h ``[..., N]`` and diag, pair broadcasting against it (``[P, 1, N]`` for a
    batch of states ``[P, B, N]``). Neuron v's partner is ``v ^ 1``; an odd last neuron has
    none (its ``pair`` is 0), so it reads itself."""
    n = h.shape[-1]
    v = torch.arange(n, device=h.device)
    partner = (v + 1 - 2 * (v % 2)).clamp_max(n - 1)  # v ^ 1, in ops every exporter knows
    return diag * h + pair * h.index_select(-1, partner)


def _lstm(pre, h, c, residual, gamma):
    i, f, g, o = pre.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _gru(gx, gh, h, c, residual, gamma):
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    rg = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    return (1 - z) * torch.tanh(xn + rg * hn) + z * h, None


#: Every cell by name.
CELLS: dict[str, Cell] = {
    "rnn-tanh": summed_cell(1, lambda pre, h, c, residual, gamma: (torch.tanh(pre), None), activation="tanh"),
    "rnn-relu": summed_cell(1, lambda pre, h, c, residual, gamma: (torch.relu(pre), None), activation="relu"),
    "lstm": summed_cell(4, _lstm, memory=True),
    "gru": Cell(3, _gru),
    "wcrnn": summed_cell(1, lambda pre, h, c, residual, gamma: (residual_apply(h, *residual) + gamma * torch.tanh(pre),
                                                              None), residual=True),
}


def register_cell(name: str, cell: Cell) -> Cell:
    """Add ``cell`` to :data:`CELLS` under ``name`` (a name taken is an error). A plug-in's
    cell is then a layer of the layered form (``cell=name``, unless it needs wcrnn's
    residual) and, with a target whose kinds include ``name``, a masked cell of its own."""
    if name in CELLS:
        raise ValueError(f"cell {name!r} is registered already")
    CELLS[name] = cell
    return cell


def layer_cells() -> tuple[str, ...]:
    """The cells a layer of the layered form can be: every registered cell but those that
    need wcrnn's residual (plug-ins included)."""
    return tuple(name for name, cell in CELLS.items() if not cell.residual)


checks.declare("cell", checks.Domain("choice", choices=layer_cells))
