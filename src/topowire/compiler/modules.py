"""Standalone compiled networks: the iterative map and the masked recurrent cells."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from topowire.compiler.arch import Arch
from topowire.compiler.functional import iterative_forward, masked_recurrent_weights, recurrent_forward
from topowire.compiler.init import default_iterations, initial_tensors, masks, parameter_counts
from topowire.compiler.wiring import Wiring

__all__ = ["CompiledNet", "IterativeNet", "MaskedRecurrentNet"]


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
        for name, t in masks(wiring).items():
            self.register_buffer(name, t)
        for name, t in initial_tensors(wiring, arch, seed).items():
            self.register_parameter(name, nn.Parameter(torch.empty_like(t)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the initial parameters from ``self.seed``."""
        with torch.no_grad():
            for name, t in initial_tensors(self.wiring, self.arch, self.seed).items():
                getattr(self, name).copy_(t)

    def parameter_counts(self) -> dict[str, int]:
        """Effective parameters: graph, interface, bias, total (mask non-zeros, not tensor sizes)."""
        return parameter_counts(self.wiring, self.arch)

    def extra_repr(self) -> str:
        c = self.parameter_counts()
        return (f"kind={self.arch.kind!r}, n_neurons={self.wiring.n_neurons}, n_edges={self.wiring.n_edges}, "
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
        return iterative_forward(
            x, self.weight[None], self.mask[None], self.w_in[None], self.in_mask[None], self.bias[None],
            self.readout[None], self.out_mask[None], self.readout_bias[None],
            self.iterations, self.arch.activation,
        )[0]

    def effective_weight(self) -> Tensor:
        return self.weight * self.mask


class MaskedRecurrentNet(CompiledNet):
    """A recurrent net (``rnn-tanh``, ``rnn-relu``, ``lstm``, ``gru``) whose hidden-to-hidden
    connectivity is the wiring: torch's cell equations with ``W_hh`` masked per gate.

    ``forward(x [B, T, d_in], lengths=None) -> [B, d_out]`` reads the output neurons at the
    last real step of every sequence.
    """

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return recurrent_forward(
            self.arch.kind, x, self.w_ih[None], self.w_hh[None], self.b_ih[None], self.b_hh[None],
            self.mask[None], self.in_mask[None], self.readout[None], self.out_mask[None],
            self.readout_bias[None], lengths=lengths,
        )[0]

    def hidden_states(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Every hidden state, ``[B, T, N]``."""
        return recurrent_forward(
            self.arch.kind, x, self.w_ih[None], self.w_hh[None], self.b_ih[None], self.b_hh[None],
            self.mask[None], self.in_mask[None], self.readout[None], self.out_mask[None],
            self.readout_bias[None], lengths=lengths, return_states=True,
        )[1][0]

    def effective_weight(self) -> Tensor:
        """``W_hh`` times the gate-tiled mask, ``[G*N, N]``."""
        return masked_recurrent_weights(self.w_hh[None], self.mask[None])[0]
