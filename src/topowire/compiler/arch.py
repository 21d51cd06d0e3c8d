"""Architecture configs: what a wiring compiles into."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from topowire import checks
from topowire.compiler.functional import GATES
from topowire.errors import ParameterError

__all__ = ["Arch", "TARGETS"]

#: Compile targets: the neuron-level iterative map and the masked recurrent cells.
TARGETS = ("iterative", *GATES, "layered")

#: The natural wiring (orientation, inputs, outputs) of masked cells and of DAG targets.
NATURAL_WIRING = {"cell": ("both", "all", "all"), "dag": ("dag", "sources", "sinks")}

#: Residual matrices of the ``wcrnn`` cell.
RESIDUALS = ("homogeneous", "rotational", "heterogeneous")


@dataclass(frozen=True)
class Arch:
    """A frozen architecture config (round-trips through JSON; its hash names runs).

    The natural wiring of a masked recurrent cell runs over the graph as symmetric
    recurrence with every neuron reading the data and read out (``both``, ``all``, ``all``);
    the feed-forward targets (``iterative``, ``layered``) orient it as a DAG from its sources
    to its sinks (``dag``, ``sources``, ``sinks``).

    Parameters
    ----------
    kind : str
        The compile target: ``iterative`` (the Sequential2D neuron-level map), a masked
        recurrent cell (``rnn-tanh``, ``rnn-relu``, ``lstm``, ``gru``, ``wcrnn``) or
        ``layered`` (the graph's DAG layers as stacked recurrent layers).
    d_in : int
        Width of the data (never depends on the graph).
    d_out : int
        Readout width (classes).
    orientation : {"dag", "random-dag", "both", "as-is"}, optional
        How edges become connections (see :func:`topowire.compiler.wire`). Unset: the
        target's natural wiring.
    inputs : {"all", "sources"} or int, optional
        Neurons that read the data: ``all``, ``sources`` (no incoming edge) or an int K (the
        K of highest degree). Unset: the target's natural wiring.
    outputs : {"all", "sinks"}, optional
        Neurons read out: ``all`` or ``sinks`` (no outgoing edge). Unset: the target's natural
        wiring.
    activation : str
        Neuron activation of the iterative map (``relu``, ``tanh``, ``sigmoid``, ``identity``).
    iterations : int, optional
        K of the iterative map. Unset: depth + 1 (exact feed-forward on a DAG).
    backend : {"dense", "sparse", "torch_sparse", "auto"}
        How graph weights are stored and multiplied (see :mod:`topowire.compiler.backends`).
    cell : str
        ``layered`` only: the cell of every layer (``rnn-tanh``, ``rnn-relu``, ``lstm``, ``gru``).
    recurrence : {"dense", "none"}
        ``layered`` only: hidden-to-hidden inside a layer.
    input_width : {"fixed", "sources"}
        ``layered`` only: a d_in-wide trainable projection onto the sources (corrected), or
        the thesis's input width = number of sources (see :mod:`topowire.compiler.layered`).
    residual : {"homogeneous", "rotational", "heterogeneous"}
        ``wcrnn`` only (arXiv 2307.14823): the fixed residual matrix R of
        ``h <- R h + gamma tanh(W h + U x + b)``: ``r I``; 2 x 2 rotation blocks of radius
        ``r`` and angle ``phi`` on neuron pairs (2i, 2i+1); or a diagonal of ``r_i`` drawn
        uniformly from ``[r - r_spread, r + r_spread]`` with the model's seed.
    r : float
        ``wcrnn`` only: the radius r of R.
    phi : float
        ``wcrnn`` only: the rotation angle of R (radians).
    gamma : float
        ``wcrnn`` only: the coupling strength.
    r_spread : float
        ``wcrnn`` only: the spread of the heterogeneous ``r_i``.
    """

    kind: str = "gru"
    d_in: int = 7
    d_out: int = 2
    orientation: str | None = None
    inputs: str | int | None = None
    outputs: str | None = None
    activation: str = "relu"
    iterations: int | None = None
    backend: str = "dense"
    cell: str = "gru"
    recurrence: str = "dense"
    input_width: str = "fixed"
    residual: str = "homogeneous"
    r: float = 0.9
    phi: float = 0.0
    gamma: float = 0.1
    r_spread: float = 0.0

    def __post_init__(self) -> None:
        checks.check("kind", self.kind)
        natural = NATURAL_WIRING["cell" if self.masked_cell else "dag"]
        for name, value in zip(("orientation", "inputs", "outputs"), natural):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if isinstance(self.inputs, str) and self.inputs.isascii() and self.inputs.isdigit():  # "3" from a file
            object.__setattr__(self, "inputs", int(self.inputs))
        checks.validate(self)
        if self.r_spread > abs(self.r):
            raise ParameterError(f"r_spread must be in [0, |r|] = [0, {abs(self.r)}], got {self.r_spread!r}")
        if self.kind == "layered" and self.backend not in ("dense", "auto"):
            raise ParameterError("the layered form uses the dense backend")

    @classmethod
    def thesis(cls, cell: str = "gru", **changes: Any) -> Arch:
        """The preset of arXiv 2407.20601: layered, dense intra-layer recurrence, input width
        = number of sources, u<v orientation, sources in and sinks out."""
        base = dict(kind="layered", cell=cell, recurrence="dense", input_width="sources",
                    orientation="dag", inputs="sources", outputs="sinks")
        return cls(**{**base, **changes})

    @property
    def gates(self) -> int:
        """Gate blocks stacked in the recurrent weights (1 for the iterative map)."""
        return GATES.get(self.cell if self.kind == "layered" else self.kind, 1)

    @property
    def recurrent(self) -> bool:
        """Runs over time steps (every target but the iterative map)."""
        return self.kind != "iterative"

    @property
    def masked_cell(self) -> bool:
        """A masked recurrent cell over all neurons (``rnn-*``, ``lstm``, ``gru``, ``wcrnn``):
        one ``W_hh`` whose mask is the wiring (not the iterative map or the layered form)."""
        return self.kind in GATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arch:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ParameterError(f"unknown arch key(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    def replace(self, **changes: Any) -> Arch:
        return Arch(**{**self.to_dict(), **changes})

    @property
    def hash(self) -> str:
        """Short content hash of the config."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
