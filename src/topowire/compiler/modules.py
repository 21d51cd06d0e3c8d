"""The standalone compiled network of any target built from its tensors (:class:`CompiledNet`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from topowire.compiler.backends import EdgeWeights, resolve_backend
from topowire.compiler.functional import masked_recurrent_weights
from topowire.compiler.wiring import Wiring

if TYPE_CHECKING:  # pragma: no cover
    from topowire.compiler.arch import Arch

__all__ = ["CompiledNet", "stacked", "wiring_masks"]


def stacked(module: nn.Module, name: str | Tensor) -> Tensor:
    """A module's tensor (or the tensor named ``name``) with a leading model axis: as stored in
    a pack (which sets ``stacked = True``), viewed as P = 1 for a standalone module."""
    t = getattr(module, name) if isinstance(name, str) else name
    return t if getattr(module, "stacked", False) else t[None]


def wiring_masks(wiring: Wiring, dense: bool = True) -> dict[str, Tensor]:
    """The wiring's masks as float32 tensors: ``mask`` [N, N] (``mask[v, u] = 1`` iff
    ``u -> v``; dense backend only), ``in_mask`` and ``out_mask`` [N]."""
    n = wiring.n_neurons
    in_mask = torch.zeros(n)
    in_mask[torch.tensor(wiring.inputs)] = 1.0
    out_mask = torch.zeros(n)
    out_mask[torch.tensor(wiring.outputs)] = 1.0
    out = {"mask": torch.from_numpy(wiring.mask())} if dense else {}
    return {**out, "in_mask": in_mask, "out_mask": out_mask}


class CompiledNet(nn.Module):
    """One model of a target whose tensors the target draws (its :meth:`initial_tensors`):
    the wiring's masks and the target's buffers as buffers, seeded parameters, the
    target's forward with the tensors viewed as P = 1.

    Parameters
    ----------
    wiring : Wiring
        The connectivity.
    arch : Arch
        The target and its sizes.
    seed : int, default 0
        Initialisation seed.

    ``forward(x, lengths=None, all_steps=False)``: ``x [B, d_in] -> [B, d_out]`` for a
    static target; ``x [B, T, d_in] -> [B, d_out]`` read at each sequence's last real step
    (``[B, T, d_out]`` at every step with ``all_steps``) for one that runs over time.
    """

    wiring: Wiring
    arch: Arch
    seed: int

    def __init__(self, wiring: Wiring, arch: Arch, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(wiring, Wiring):
            raise TypeError(f"expected a Wiring, got {type(wiring).__name__}")
        if not hasattr(arch, "target"):  # an Arch (its target built this module)
            raise TypeError(f"expected an Arch, got {type(arch).__name__}")
        self.wiring, self.arch, self.seed = wiring, arch, int(seed)
        self.backend = resolve_backend(arch.backend, wiring.n_neurons, wiring.n_edges)
        for name, t in wiring_masks(wiring, dense=self.backend == "dense").items():
            self.register_buffer(name, t)
        for name, t in arch.target.buffers([wiring], arch, [self.seed], None).items():
            self.register_buffer(name, t)
        if self.backend != "dense":
            self.graph = EdgeWeights(wiring.edges, wiring.n_neurons, arch.gates, self.backend)
        for name, t in arch.target.initial_tensors(wiring, arch, self.seed, self.backend).items():
            if "." not in name:
                self.register_parameter(name, nn.Parameter(torch.empty_like(t)))
        self.iterations = arch.target.iterations(wiring, arch)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the initial parameters from ``self.seed``."""
        with torch.no_grad():
            for name, t in self.arch.target.initial_tensors(self.wiring, self.arch, self.seed, self.backend).items():
                self.get_parameter(name).copy_(t)

    def graph_args(self, name: str) -> dict:
        """The dense graph weight ``name`` and its mask, or the sparse operator, as the
        functional core takes them (``w``, ``mask``, ``graph_op``)."""
        if self.backend == "dense":
            return {"w": getattr(self, name)[None], "mask": self.mask[None], "graph_op": None}
        return {"w": None, "mask": None, "graph_op": self.graph}

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        return self.arch.target.forward(self, x, lengths, all_steps)[0]

    def effective_weight(self) -> Tensor:
        """The graph weights as a dense masked matrix ``[G*N, N]``."""
        if self.backend != "dense":
            return self.graph.to_dense()
        name = "w_hh" if hasattr(self, "w_hh") else "weight"
        return masked_recurrent_weights(getattr(self, name)[None], self.mask[None])[0]

    def parameter_counts(self) -> dict[str, int]:
        """Effective parameters: graph, interface, bias, total (mask non-zeros, not tensor sizes)."""
        return self.arch.target.parameter_counts(self.wiring, self.arch, self.seed)

    def extra_repr(self) -> str:
        c = self.parameter_counts()
        backend = f", backend={self.backend!r}" if self.backend != "dense" else ""
        parts = ", ".join(f"{k}={v}" for k, v in c.items() if k != "total")
        return (f"kind={self.arch.kind!r}{backend}, n_neurons={self.wiring.n_neurons}, n_edges={self.wiring.n_edges}, "
                f"d_in={self.arch.d_in}, d_out={self.arch.d_out}, params={c['total']} ({parts})")
