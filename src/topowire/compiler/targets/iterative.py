"""The neuron-level iterative map (the Sequential2D view): ``z <- act((W*M) z + (U*M_in) x + b)``.

K Jacobi iterations, every neuron reading the previous state. On a DAG of depth D,
K = D + 1 (the default) gives exactly the feed-forward network whose neurons compute
``act(sum_{u->v} w_uv h_u + (Ux)_v + b_v)``, read out at the sinks: an MLP and an RNN are
the same iterative map under different masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from topowire.compiler.cells import ACTIVATIONS
from topowire.compiler.functional import graph_step, readout
from topowire.compiler.modules import CompiledNet, stacked, wiring_masks
from topowire.compiler.targets.base import Target, register_target

__all__ = ["IterativeNet", "IterativeOptions", "iterative_forward", "IterativeTarget"]


@dataclass(frozen=True)
class IterativeOptions:
    """The options of the iterative map.

    Parameters
    ----------
    activation : str
        Neuron activation of the iterative map (``relu``, ``tanh``, ``sigmoid``, ``identity``).
    iterations : int, optional
        K of the iterative map. Unset: depth + 1 (exact feed-forward on a DAG).
    """

    activation: str = "relu"
    iterations: int | None = None

    def __post_init__(self) -> None:
        from topowire import checks

        checks.validate(self)


def iterative_forward(x: Tensor, w: Tensor, mask: Tensor, u: Tensor, in_mask: Tensor, b: Tensor, r: Tensor,
                      out_mask: Tensor, b_out: Tensor, iterations: int, activation: str, graph_op=None) -> Tensor:
    """The iterative map ``z <- act((W*M) z + (U*M_in) x + b)``, K Jacobi steps, for P models.

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
        A key of :data:`~topowire.compiler.cells.ACTIVATIONS`.
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
    step = graph_step(w, mask, graph_op, gates=1)
    z = act(drive)
    for _ in range(iterations - 1):
        z = act(step(drive, z))
    return readout(z, r, out_mask, b_out)


def _uniform(gen: torch.Generator, shape: tuple[int, ...], bound: Tensor | float) -> Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound


class IterativeNet(CompiledNet):
    """The neuron-level Sequential2D map ``z <- act((W*M) z + (U*M_in) x + b)``, K iterations.

    On a DAG with K = depth + 1 (the default) the readout of the sink neurons equals the
    feed-forward network whose neurons compute ``act(sum_{u->v} w_uv h_u + (Ux)_v + b_v)``.
    ``forward(x [B, d_in]) -> [B, d_out]``.
    """

    def forward(self, x: Tensor) -> Tensor:  # a static map: no lengths
        return self.arch.target.forward(self, x)[0]


class IterativeTarget(Target):
    """The iterative map (see the module docstring)."""

    kinds = ("iterative",)
    doc = "the Sequential2D neuron-level iterative map (feed-forward on a DAG)"
    layout = {"weight": "neurons+cols", "w_in": "neurons", "bias": "neurons", "readout": "cols",
              "readout_bias": "none"}

    def options(self, kind: str) -> type:
        return IterativeOptions

    def iterations(self, wiring, arch) -> int:
        """``arch.iterations``, or depth + 1 on a DAG (NotADAGError on a cyclic wiring)."""
        if arch.iterations is not None:
            return arch.iterations
        wiring.require_dag()
        return wiring.depth + 1

    def initial_tensors(self, wiring, arch, seed, backend="dense"):
        """nn.Linear per neuron: neuron v's incoming weights, input weights and bias
        ~ U(-1/sqrt(f_v), 1/sqrt(f_v)) with f_v its fan-in (graph in-degree, + d_in for an
        input neuron); the readout U(-1/sqrt(n_outputs), ...). Drawn from
        ``torch.Generator().manual_seed(seed)`` in a fixed order."""
        from topowire.compiler.backends import edge_structure

        m = wiring_masks(wiring, dense=backend == "dense")
        n, d_in, d_out = wiring.n_neurons, arch.d_in, arch.d_out
        gen = torch.Generator().manual_seed(int(seed))
        indeg = torch.from_numpy(np.bincount(wiring.edges[:, 1], minlength=n).astype(np.float32))
        bound = 1.0 / torch.sqrt(torch.clamp(indeg + d_in * m["in_mask"], min=1.0))
        out: dict[str, Tensor] = {}
        if backend == "dense":
            out["weight"] = _uniform(gen, (n, n), bound[:, None]) * m["mask"]
        else:
            row = edge_structure(wiring.edges, n, 1)[2]
            out["graph.values"] = _uniform(gen, (wiring.n_edges,), bound[row])
        out["w_in"] = _uniform(gen, (n, d_in), bound[:, None]) * m["in_mask"][:, None]
        out["bias"] = _uniform(gen, (n,), bound)
        ko = 1.0 / math.sqrt(len(wiring.outputs))
        out["readout"] = _uniform(gen, (d_out, n), ko) * m["out_mask"][None, :]
        out["readout_bias"] = _uniform(gen, (d_out,), ko)
        return out

    def forward(self, module, x, lengths=None, all_steps=False):
        if all_steps or lengths is not None or x.dim() != 2:
            from topowire.errors import ParameterError

            raise ParameterError("the iterative map takes static inputs [B, d_in], not sequences")
        g = module.graph_args("weight")
        return iterative_forward(x, g["w"], g["mask"], stacked(module, "w_in"), stacked(module, "in_mask"),
                                 stacked(module, "bias"), stacked(module, "readout"), stacked(module, "out_mask"),
                                 stacked(module, "readout_bias"), module.iterations, module.arch.activation,
                                 graph_op=g["graph_op"])

    def parameter_counts(self, wiring, arch, seed=0):
        graph = wiring.n_edges
        interface = len(wiring.inputs) * arch.d_in + len(wiring.outputs) * arch.d_out
        bias = wiring.n_neurons + arch.d_out
        return {"graph": int(graph), "interface": int(interface), "bias": int(bias),
                "total": int(graph + interface + bias)}

    def build(self, wiring, arch, seed):
        return IterativeNet(wiring, arch, seed)


register_target(IterativeTarget())
