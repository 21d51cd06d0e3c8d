"""Seeded initial weights of one model, drawn at its true size (so packing cannot change them)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from topowire.compiler.arch import Arch
from topowire.compiler.functional import masked_recurrent_weights
from topowire.compiler.wiring import Wiring

__all__ = ["masks", "initial_tensors", "parameter_counts", "default_iterations"]


def masks(wiring: Wiring, dense: bool = True) -> dict[str, Tensor]:
    """The wiring's masks as float32 tensors: ``mask`` [N, N] (dense backend only),
    ``in_mask`` and ``out_mask`` [N]."""
    n = wiring.n_neurons
    in_mask = torch.zeros(n)
    in_mask[torch.tensor(wiring.inputs)] = 1.0
    out_mask = torch.zeros(n)
    out_mask[torch.tensor(wiring.outputs)] = 1.0
    out = {"mask": torch.from_numpy(wiring.mask())} if dense else {}
    return {**out, "in_mask": in_mask, "out_mask": out_mask}


def _uniform(gen: torch.Generator, shape: tuple[int, ...], bound: Tensor | float) -> Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound


def initial_tensors(wiring: Wiring, arch: Arch, seed: int, backend: str = "dense") -> dict[str, Tensor]:
    """Initial parameters of one model, masked entries exactly zero.

    Recurrent cells follow torch's RNN/LSTM/GRU convention: every weight and bias
    ~ U(-1/sqrt(N), 1/sqrt(N)). The iterative map follows nn.Linear per neuron: neuron
    v's incoming weights, input weights and bias ~ U(-1/sqrt(f_v), 1/sqrt(f_v)) with f_v
    its fan-in (graph in-degree, + d_in for an input neuron). The readout is nn.Linear's
    U(-1/sqrt(n_outputs), ...). Everything is drawn from ``torch.Generator().manual_seed(seed)``
    in a fixed order. With a sparse ``backend`` the graph weights are drawn per edge
    (``graph.values``, CSR order) from the same distribution: the same seed then gives a
    different draw than the dense backend (copy weights across with ``EdgeWeights.from_dense``).
    """
    from topowire.compiler.backends import edge_structure

    dense = backend == "dense"
    m = masks(wiring, dense=dense)
    n, d_in, d_out, g = wiring.n_neurons, arch.d_in, arch.d_out, arch.gates
    gen = torch.Generator().manual_seed(int(seed))
    out: dict[str, Tensor] = {}
    if arch.masked_cell:
        k = 1.0 / math.sqrt(n)
        w_ih = _uniform(gen, (g * n, d_in), k)
        if dense:
            w_hh = _uniform(gen, (g * n, n), k)
            out["w_hh"] = masked_recurrent_weights(w_hh[None], m["mask"][None])[0]
        else:
            out["graph.values"] = _uniform(gen, (g * wiring.n_edges,), k)
        out["b_ih"] = _uniform(gen, (g * n,), k)
        out["b_hh"] = _uniform(gen, (g * n,), k)
        out["w_ih"] = masked_recurrent_weights(w_ih[None], m["in_mask"][None, :, None].expand(1, n, d_in))[0]
    else:
        indeg = torch.from_numpy(np.bincount(wiring.edges[:, 1], minlength=n).astype(np.float32))
        fan_in = indeg + d_in * m["in_mask"]
        bound = 1.0 / torch.sqrt(torch.clamp(fan_in, min=1.0))
        if dense:
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


def parameter_counts(wiring: Wiring, arch: Arch) -> dict[str, int]:
    """Effective trainable parameters: graph weights (mask non-zeros per gate), interface
    weights (input projection + readout), biases, and their total."""
    g = arch.gates
    graph = g * wiring.n_edges
    interface = g * len(wiring.inputs) * arch.d_in + len(wiring.outputs) * arch.d_out
    n = wiring.n_neurons
    bias = (2 * g * n if arch.masked_cell else n) + arch.d_out
    return {"graph": int(graph), "interface": int(interface), "bias": int(bias),
            "total": int(graph + interface + bias)}


def default_iterations(wiring: Wiring, arch: Arch) -> int:
    """K for the iterative map: ``arch.iterations`` or depth + 1 on a DAG."""
    if arch.iterations is not None:
        return arch.iterations
    wiring.require_dag()
    return wiring.depth + 1


