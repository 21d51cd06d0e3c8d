"""The compile-target protocol and its registry (the plug-ins' base, imported by each).

See :mod:`topowire.compiler.targets` for how targets are found."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from topowire.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn

    from topowire.compiler.arch import Arch
    from topowire.compiler.wiring import Wiring

__all__ = ["Target", "NoOptions", "TARGETS", "register_target", "get_target", "option_fields", "kinds_help"]


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A target without options of its own."""


class Target:
    """One family of compile targets (see the module docstring).

    Attributes
    ----------
    kinds : tuple of str
        The ``Arch.kind`` values this target compiles.
    doc : str
        One line for each kind's help: what it compiles into.
    natural_wiring : (orientation, inputs, outputs)
        The wiring an arch of this target gets when it names none.
    over_time : bool
        Runs over the time steps of a sequence (a recurrent target), or maps a static
        input (a feed-forward one).
    masked_recurrence : bool
        One recurrent weight ``W_hh`` over all neurons whose mask is the wiring (the
        masked cells): stability projection, Lyapunov spectra and dynamics features apply.
    layout : dict of str to str
        How each tensor of :meth:`initial_tensors` is padded in a pack: ``gates`` (G
        blocks of N rows), ``neurons`` (N rows), ``cols`` (N columns), combined with ``+``,
        or ``none`` (no neuron axis).
    """

    kinds: tuple[str, ...] = ()
    doc: str = ""
    natural_wiring: tuple[str, str | int, str] = ("dag", "sources", "sinks")
    over_time: bool = False
    masked_recurrence: bool = False
    layout: dict[str, str] = {}

    # -- options and checks ---------------------------------------------------------------
    def options(self, kind: str) -> type:
        """The frozen dataclass of ``kind``'s own options (each field's domain in its
        ``metadata["domain"]`` or named in ``DOMAINS``)."""
        return NoOptions

    def check_arch(self, arch: Arch) -> None:
        """Checks across fields, once each field is valid (ParameterError)."""

    def gates(self, arch: Arch) -> int:
        """Gate blocks stacked in the recurrent weights."""
        return 1

    def check_task(self, arch: Arch, task) -> None:
        """ParameterError unless ``arch`` can be trained on ``task``."""
        if self.over_time and not task.sequence:
            raise ParameterError(f"task {task.name!r} gives static inputs; the {arch.kind} arch needs a sequence "
                                 "task (e.g. smnist-rows)")
        if not self.over_time and task.sequence:
            raise ParameterError(f"task {task.name!r} gives sequences; the {arch.kind} arch needs a static task "
                                 "(e.g. mnist)")

    # -- tensors ------------------------------------------------------------------------
    def initial_tensors(self, wiring: Wiring, arch: Arch, seed: int, backend: str = "dense") -> dict[str, Tensor]:
        """One model's initial parameters at its true size, masked entries exactly zero."""
        raise TypeError(f"{type(self).__name__} builds its own modules: it has no generic initial tensors")

    def buffers(self, wirings: list[Wiring], arch: Arch, seeds: list[int], n_max: int | None) -> dict[str, Tensor]:
        """Buffers beyond the wiring's masks: ``[N, ...]`` for one model (``n_max`` None),
        ``[P, n_max, ...]`` for a pack, zero on padding."""
        return {}

    def forward(self, module: nn.Module, x: Tensor, lengths: Tensor | None = None,
                all_steps: bool = False) -> Tensor:
        """The outputs of every model of ``module`` (a model seen as P = 1, or a pack):
        ``[P, B, d_out]``, or ``[P, B, T, d_out]`` with ``all_steps``. Tensors are read with
        :func:`~topowire.compiler.modules.stacked`."""
        raise TypeError(f"{type(self).__name__} builds its own modules: they have their own forward")

    def losses(self, module: nn.Module, x: Tensor, lengths: Tensor | None, y: Tensor,
               objective: str) -> Tensor | None:
        """Every model's mean training loss on a batch of sequences read out at their last step,
        ``[P]``, computed by the target itself with its backward (faster than reading out and
        scoring :meth:`forward`'s outputs), or None where it has no such path for these
        inputs and ``objective`` (the default): the trainer then scores the outputs."""
        return None

    def parameter_counts(self, wiring: Wiring, arch: Arch, seed: int = 0) -> dict[str, int]:
        """Effective trainable parameters (mask non-zeros, not tensor sizes): ``graph``,
        ``interface``, ``bias``, ... and ``total``, without building the model where the
        wiring suffices (the default builds it)."""
        return self.build(wiring, arch, seed).parameter_counts()

    def size_measure(self, arch: Arch) -> str:
        """What this arch holds fixed across graphs when it matches their size: ``params``
        (the default), or another count of :meth:`parameter_counts` (``flops``) that the
        model features then carry as a column of its own."""
        return "params"

    def model_width(self, topology, arch: Arch) -> int:
        """The width a model of this topology is padded to in a pack (packs hold models of
        similar widths): its nodes."""
        return topology.n

    def holds_fixed(self, arch: Arch) -> str | None:
        """What this arch holds fixed across graphs, in words (a run's description), or None."""
        return None

    def model_bytes(self, n_neurons: int, n_edges: int, arch: Arch) -> float:
        """Bytes building one model takes (checked against the memory limit first): the
        dense masked weights, mask and initial draw, ~(gates + 2) float32 N x N matrices
        (~3 floats per edge and gate on a sparse backend); the input projection and the
        readout, ~3 floats per neuron, gate and data column."""
        gates = self.gates(arch)
        per_entry = n_neurons * n_neurons if arch.backend in ("dense", "auto") else n_edges
        interface = n_neurons * (gates * arch.d_in + arch.d_out)
        return 4.0 * (per_entry * (gates + 2) + 3 * interface)

    def train_bytes(self, n: int, arch: Arch, batch: int, steps: int) -> int:
        """Rough bytes one padded model of width n takes in a pack while training."""
        g = self.gates(arch)
        params = g * n * n + g * n * arch.d_in + 2 * g * n + arch.d_out * (n + 1)
        state = 4 * params * 4 + 4 * n * n  # parameter, gradient, two moments; the mask
        activations = 4 * (3 * g + 4) * n * batch * max(1, steps)
        return int(state + activations)

    # -- modules ------------------------------------------------------------------------
    def build(self, wiring: Wiring, arch: Arch, seed: int) -> nn.Module:
        """The standalone model (:class:`~topowire.compiler.modules.CompiledNet`)."""
        from topowire.compiler.modules import CompiledNet

        return CompiledNet(wiring, arch, seed)

    def pack(self, wirings: list[Wiring], arch: Arch, seeds: list[int]) -> nn.Module:
        """P models as one program (:class:`~topowire.compiler.pack.PackedPopulation`)."""
        from topowire.compiler.pack import PackedPopulation

        return PackedPopulation(wirings, arch, seeds)

    def iterations(self, wiring: Wiring, arch: Arch) -> int | None:
        """Iterations of an iterative map (None: the target is not one)."""
        return None

    def check_saved(self, n_neurons: int, arch: dict, shapes: dict[str, tuple[int, ...]]) -> str | None:
        """Why a saved file's tensors (their ``shapes``, read from its header) cannot be the
        model its spec describes (``n_neurons``, the spec's ``arch`` dict), or None. Checked
        before anything is built, so a spec edited to a larger model is refused, not
        allocated. The default reads the ``readout [d_out, N]`` and the input weights."""
        shape = shapes.get("readout")
        inputs = next((shapes[k] for k in ("w_ih", "w_in", "w_ih.0", "cells.0.w_ih") if k in shapes), None)
        d_out, d_in = arch.get("d_out"), arch.get("d_in")
        if shape is None or len(shape) != 2 or shape[1] != n_neurons or (isinstance(d_out, int) and shape[0] != d_out):
            return (f"the spec describes {n_neurons:,} neurons and d_out = {d_out} but the file's readout "
                    f"tensor has shape {list(shape) if shape is not None else None}")
        if inputs is not None and isinstance(d_in, int) and arch.get("input_width") != "sources" and inputs[-1] != d_in:
            return f"the spec describes d_in = {d_in:,} but the file's input weights have shape {list(inputs)}"
        return None

    def export_layers(self, module: nn.Module):
        """For a recurrent model: ``(cell, layers, residual, gamma, readout, readout_bias, d0)``
        on its effective (masked) weights, one model (see
        :func:`topowire.compiler.export.export_torchscript`); None: the module itself is
        traced."""
        return None


#: Every registered target, by each kind it compiles.
TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    """Add ``target`` under each of its kinds (a kind registered twice is an error)."""
    taken = [k for k in target.kinds if k in TARGETS and TARGETS[k] is not target]
    if not target.kinds or taken:
        raise ValueError(f"target {type(target).__name__} has no kinds, or kinds already registered: {taken}")
    for kind in target.kinds:
        TARGETS[kind] = target
    return target


def option_fields() -> dict[str, tuple[type, list[str]]]:
    """Every option of every registered target: its name, the options class that declares
    it and the kinds that take it (for a command line that offers them all)."""
    owners: dict[str, tuple[type, list[str]]] = {}
    for target in dict.fromkeys(TARGETS.values()):
        for kind in target.kinds:
            for f in dataclasses.fields(target.options(kind)):
                owners.setdefault(f.name, (target.options(kind), []))[1].append(kind)
    return owners


def kinds_help() -> str:
    """Every registered target's kinds and what it compiles into (its ``doc``), for ``--arch``."""
    return ": " + "; ".join(f"{'/'.join(t.kinds)}, {t.doc}" for t in dict.fromkeys(TARGETS.values())) + "."


def get_target(kind: str) -> Target:
    """The target of ``kind`` (ParameterError listing the registered kinds)."""
    try:
        return TARGETS[kind]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown kind {kind!r}: expected one of {', '.join(TARGETS)}") from None
