"""Standalone compiled networks: the iterative map and the masked recurrent cells."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from topowire.compiler.arch import Arch
from topowire.compiler.backends import EdgeWeights, resolve_backend
from topowire.compiler.functional import (
    iterative_forward,
    masked_recurrent_weights,
    readout_all_steps,
    recurrent_forward,
)
from topowire.compiler.init import (
    default_iterations,
    initial_tensors,
    masks,
    parameter_counts,
)
from topowire.compiler.wcrnn import register_residual, residual_args
from topowire.compiler.wiring import Wiring

__all__ = ["CompiledNet", "IterativeNet", "MaskedRecurrentNet"]


def stacked(module: nn.Module, name: str | Tensor) -> Tensor:
    """A module's tensor (or the tensor named ``name``) with a leading model axis: as stored in
    a pack (which sets ``stacked = True``), viewed as P = 1 for a standalone module."""
    t = getattr(module, name) if isinstance(name, str) else name
    return t if getattr(module, "stacked", False) else t[None]


class CompiledNet(nn.Module):
    """Common base: a wiring's masks as buffers, seeded parameters, parameter counts.

    Parameters
    ----------
    wiring : Wiring
        The connectivity.
    arch : Arch
        The target and its sizes.
    seed : int, default 0
        Initialisation seed.
    """

    wiring: Wiring
    arch: Arch
    seed: int

    def __init__(self, wiring: Wiring, arch: Arch, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(wiring, Wiring):
            raise TypeError(f"expected a Wiring, got {type(wiring).__name__}")
        if not isinstance(arch, Arch):
            raise TypeError(f"expected an Arch, got {type(arch).__name__}")
        self.wiring, self.arch, self.seed = wiring, arch, int(seed)
        self.backend = resolve_backend(arch.backend, wiring.n_neurons, wiring.n_edges)
        for name, t in masks(wiring, dense=self.backend == "dense").items():
            self.register_buffer(name, t)
        if arch.masked_cell:  # per-connection input mask: all ones until pruned
            self.register_buffer("ih_mask", torch.ones(wiring.n_neurons, arch.d_in))
        register_residual(self, [wiring.n_neurons], arch, [seed])
        if self.backend != "dense":
            self.graph = EdgeWeights(wiring.edges, wiring.n_neurons, arch.gates, self.backend)
        for name, t in initial_tensors(wiring, arch, seed, self.backend).items():
            if "." not in name:
                self.register_parameter(name, nn.Parameter(torch.empty_like(t)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the initial parameters from ``self.seed``."""
        with torch.no_grad():
            for name, t in initial_tensors(self.wiring, self.arch, self.seed, self.backend).items():
                self.get_parameter(name).copy_(t)

    def _graph_args(self, name: str) -> dict:
        """The dense weight and mask, or the sparse operator, for the functional core."""
        if self.backend == "dense":
            return {"w": getattr(self, name)[None], "mask": self.mask[None], "graph_op": None}
        return {"w": None, "mask": None, "graph_op": self.graph}

    def effective_weight(self) -> Tensor:
        """The graph weights as a dense masked matrix (``[G*N, N]``; G = 1 for the iterative map)."""
        if self.backend != "dense":
            return self.graph.to_dense()
        if self.arch.masked_cell:
            return masked_recurrent_weights(self.w_hh[None], self.mask[None])[0]
        return self.weight * self.mask

    def parameter_counts(self) -> dict[str, int]:
        """Effective parameters: graph, interface, bias, total (mask non-zeros, not tensor sizes)."""
        return parameter_counts(self.wiring, self.arch)

    def extra_repr(self) -> str:
        c = self.parameter_counts()
        backend = f", backend={self.backend!r}" if self.backend != "dense" else ""
        return (f"kind={self.arch.kind!r}{backend}, n_neurons={self.wiring.n_neurons}, n_edges={self.wiring.n_edges}, "
                f"d_in={self.arch.d_in}, d_out={self.arch.d_out}, params={c['total']} "
                f"(graph={c['graph']}, interface={c['interface']}, bias={c['bias']})")


class IterativeNet(CompiledNet):
    """The neuron-level Sequential2D map ``z <- act((W*M) z + (U*M_in) x + b)``, K iterations.

    On a DAG with K = depth + 1 (the default) the readout of the sink neurons equals the
    feed-forward network whose neurons compute ``act(sum_{u->v} w_uv h_u + (Ux)_v + b_v)``.
    ``forward(x [B, d_in]) -> [B, d_out]``.
    """

    def __init__(self, wiring: Wiring, arch: Arch, seed: int = 0) -> None:
        super().__init__(wiring, arch, seed)
        self.iterations = default_iterations(wiring, arch)

    def forward(self, x: Tensor) -> Tensor:
        g = self._graph_args("weight")
        return iterative_forward(
            x, g["w"], g["mask"], self.w_in[None], self.in_mask[None], self.bias[None],
            self.readout[None], self.out_mask[None], self.readout_bias[None],
            self.iterations, self.arch.activation, graph_op=g["graph_op"],
        )[0]


class MaskedRecurrentNet(CompiledNet):
    """A recurrent net (``rnn-tanh``, ``rnn-relu``, ``lstm``, ``gru``, ``wcrnn``) whose
    hidden-to-hidden connectivity is the wiring: torch's cell equations with ``W_hh`` masked
    per gate, or the weakly coupled residual cell ``h <- R h + gamma tanh(W h + U x + b)``
    with R fixed (buffers ``res_diag``, ``res_pair``).

    ``forward(x [B, T, d_in], lengths=None) -> [B, d_out]`` reads the output neurons at the
    last real step of every sequence.
    """

    def _run(self, x: Tensor, lengths: Tensor | None, states: bool):
        g = self._graph_args("w_hh")
        return recurrent_forward(
            self.arch.kind, x, self.w_ih[None], g["w"], self.b_ih[None], self.b_hh[None],
            g["mask"], self.in_mask[None], self.readout[None], self.out_mask[None],
            self.readout_bias[None], lengths=lengths, return_states=states, graph_op=g["graph_op"],
            **residual_args(self), ih_mask=self.ih_mask[None],
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        """``[B, d_out]`` at the last real step, or ``[B, T, d_out]`` at every step."""
        if all_steps:
            states = self._run(x, lengths, True)[1]
            return readout_all_steps(states, self.readout[None], self.out_mask[None], self.readout_bias[None])[0]
        return self._run(x, lengths, False)[0]

    def hidden_states(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Every hidden state, ``[B, T, N]``."""
        return self._run(x, lengths, True)[1][0]
