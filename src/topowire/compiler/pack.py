"""Packed populations: P compiled models padded to one width and run as one program (DESIGN §5);
:func:`topowire.compiler.compile.pack` builds one.

Every model keeps its own weights, masks and optimizer state; one input batch is shared.
Padding neurons are masked out of every weight (rows, columns, input and readout), so they
are never read and receive zero gradient: model p of a pack computes exactly what
``compile(wiring_p, arch, seed=s_p)`` computes. The target lays its tensors out
(:attr:`~topowire.compiler.targets.Target.layout`) and runs them
(:meth:`~topowire.compiler.targets.Target.forward`); this module pads, stacks and unpacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from topowire.compiler.wiring import Wiring
from topowire.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from topowire.compiler.arch import Arch

__all__ = ["PackedPopulation", "PackOfOne", "padded_view"]


def padded_view(full: Tensor, layout: str, n: int, n_max: int, gates: int) -> Tensor:
    """The region of one model's padded tensor that holds its true-size (n) values."""
    if layout == "none":
        return full
    view = full.view(gates, n_max, *full.shape[1:])[:, :n] if layout.startswith("gates") else full
    if layout.startswith("neurons"):
        view = view[:n]
    if layout.endswith("cols"):
        view = view[..., :n]
    return view


def _padded_shape(t: Tensor, layout: str, n: int, n_max: int, gates: int) -> tuple[int, ...]:
    shape = list(t.shape)
    if layout.startswith("gates"):
        shape[0] = gates * n_max
    elif layout.startswith("neurons"):
        shape[0] = n_max
    if layout.endswith("cols"):
        shape[-1] = n_max
    return tuple(shape)


def _unpad(t: Tensor, layout: str, n: int, n_max: int, gates: int) -> Tensor:
    if layout == "none":
        return t
    if layout.startswith("gates"):
        t = t.reshape(gates, n_max, *t.shape[1:])[:, :n]
        t = t.reshape(gates * n, *t.shape[2:])
    elif layout.startswith("neurons"):
        t = t[:n]
    if layout.endswith("cols"):
        t = t[..., :n]
    return t


class PackedPopulation(nn.Module):
    """P models of one arch, stacked on a leading axis; ``forward`` returns ``[P, B, d_out]``.

    Build with :func:`pack`. Parameters have the shapes of the standalone modules with a
    leading P and the neuron axes padded to ``n_max``; masks are buffers.
    """

    stacked = True  # tensors carry the model axis (see topowire.compiler.modules.stacked)

    def __init__(self, wirings: Sequence[Wiring], arch: Arch, seeds: Sequence[int]) -> None:
        super().__init__()
        if len(wirings) == 0:
            raise ParameterError("pack() needs at least one wiring")
        if len(seeds) != len(wirings):
            raise ParameterError(f"got {len(seeds)} seeds for {len(wirings)} wirings")
        if arch.backend not in ("dense", "auto"):
            raise ParameterError(f"packed populations use the dense backend, got backend {arch.backend!r}")
        arch = arch.replace(backend="dense")
        self.arch, self.wirings, self.seeds = arch, list(wirings), [int(s) for s in seeds]
        target = arch.target
        self.sizes = np.array([w.n_neurons for w in wirings])
        n_max, p = int(self.sizes.max()), len(wirings)
        self.n_max = n_max
        self.register_buffer("mask", torch.zeros(p, n_max, n_max))
        self.register_buffer("in_mask", torch.zeros(p, n_max))
        self.register_buffer("out_mask", torch.zeros(p, n_max))
        # masks for the whole population in three scatters
        model = np.repeat(np.arange(p), [w.n_edges for w in wirings])
        edges = np.concatenate([w.edges for w in wirings]) if model.size else np.zeros((0, 2), np.int64)
        self.mask[torch.from_numpy(model), torch.from_numpy(edges[:, 1]), torch.from_numpy(edges[:, 0])] = 1.0
        for buf, attr in ((self.in_mask, "inputs"), (self.out_mask, "outputs")):
            idx = [getattr(w, attr) for w in wirings]
            rows = np.repeat(np.arange(p), [len(i) for i in idx])
            buf[torch.from_numpy(rows), torch.from_numpy(np.concatenate(idx))] = 1.0
        for name, t in target.buffers(self.wirings, arch, self.seeds, n_max).items():
            self.register_buffer(name, t)
        counts = [target.iterations(w, arch) for w in wirings]
        self.iterations = None if counts[0] is None else max(counts)
        gates = arch.gates
        for p_, (w, s) in enumerate(zip(wirings, self.seeds)):
            for name, t in target.initial_tensors(w, arch, s).items():
                layout, n = target.layout[name], w.n_neurons
                if p_ == 0:
                    shape = _padded_shape(t, layout, n, n_max, gates)
                    self.register_parameter(name, nn.Parameter(torch.zeros(p, *shape)))
                view = padded_view(getattr(self, name).data[p_], layout, n, n_max, gates)
                view.copy_(t.view(view.shape))

    def __len__(self) -> int:
        return len(self.wirings)

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        """``[P, B, d_out]``, or ``[P, B, T, d_out]`` with ``all_steps`` (targets that run over time)."""
        return self.arch.target.forward(self, x, lengths, all_steps)

    def graph_args(self, name: str) -> dict:
        """The dense graph weight ``name`` and its mask, as the functional core takes them."""
        return {"w": getattr(self, name), "mask": self.mask, "graph_op": None}

    def model_tensors(self, p: int) -> dict[str, Tensor]:
        """Model p's parameters at its true size (detached copies)."""
        if not 0 <= p < len(self):
            raise IndexError(f"model index {p} out of range for a pack of {len(self)}")
        n, layout = int(self.sizes[p]), self.arch.target.layout
        return {name: _unpad(param.detach()[p], layout[name], n, self.n_max, self.arch.gates).clone()
                for name, param in self.named_parameters()}

    def unpack(self, p: int) -> nn.Module:
        """A standalone module with model p's current weights and masks (a pruned model stays pruned)."""
        net = self.arch.target.build(self.wirings[p], self.arch, self.seeds[p])
        with torch.no_grad():
            for name, t in self.model_tensors(p).items():
                getattr(net, name).copy_(t)
            for name, buf in net.named_buffers():  # its true-size corner of the padded buffer
                buf.copy_(getattr(self, name)[p][tuple(slice(0, d) for d in buf.shape)])
        return net

    def parameter_counts(self) -> list[dict[str, int]]:
        """Effective parameter counts of every model."""
        return [self.arch.target.parameter_counts(w, self.arch, s) for w, s in zip(self.wirings, self.seeds)]

    def extra_repr(self) -> str:
        return (f"kind={self.arch.kind!r}, models={len(self)}, n_max={self.n_max}, "
                f"neurons={int(self.sizes.sum())}, edges={sum(w.n_edges for w in self.wirings)}")


class PackOfOne(nn.Module):
    """One standalone module seen as a pack: outputs gain a leading ``P = 1``.

    Its tensors are the module's own (attribute access is delegated), without a model
    axis (``stacked = False``): :func:`~topowire.compiler.modules.stacked` and the stacked
    optimizers view them as ``[1, ...]``, so whatever works on a pack works on one model.
    """

    stacked = False

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)

    def __len__(self) -> int:
        return 1

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        if lengths is None:
            return self.module(x)[None]
        return (self.module(x, lengths, all_steps=True) if all_steps else self.module(x, lengths))[None]

    def unpack(self, p: int) -> nn.Module:
        if p != 0:
            raise IndexError(f"model index {p} out of range for a pack of 1")
        return self.module
