"""``compile(topology_or_wiring, arch)``: a graph becomes a network."""

from __future__ import annotations

from torch import nn

from topowire.compiler.arch import Arch
from topowire.compiler.functional import GATES
from topowire.compiler.init import parameter_counts
from topowire.compiler.modules import IterativeNet, MaskedRecurrentNet
from topowire.compiler.wiring import Wiring, wire
from topowire.topology.topology import Topology

__all__ = ["compile", "as_wiring", "model_parameter_counts"]


def as_wiring(source: Topology | Wiring, arch: Arch, seed: int = 0) -> Wiring:
    """A wiring as given, or the topology wired with the arch's orientation and roles."""
    if isinstance(source, Wiring):
        return source
    if isinstance(source, Topology):
        return wire(source, arch.orientation, arch.inputs, arch.outputs, seed=seed)
    raise TypeError(f"compile() takes a Topology or a Wiring, got {type(source).__name__}")


def compile(source: Topology | Wiring, arch: Arch | str = "gru", *, seed: int = 0, **arch_fields) -> nn.Module:  # noqa: A001
    """Compile a topology (or a ready wiring) into a masked network. Pure: no I/O.

    Parameters
    ----------
    source : Topology or Wiring
        The graph; a topology is wired with ``arch``'s orientation and roles.
    arch : Arch or str
        The target; a string is ``Arch(kind=arch, **arch_fields)``.
    seed : int, default 0
        Initialisation seed (and the ``random-dag`` permutation seed).

    Returns
    -------
    nn.Module
        :class:`IterativeNet`, :class:`MaskedRecurrentNet` or
        :class:`~topowire.compiler.layered.LayeredRecurrentNet`.

    Raises
    ------
    NotADAGError
        A cyclic wiring for the iterative map without an explicit ``iterations``.
    """
    if isinstance(arch, str):
        arch = Arch(kind=arch, **arch_fields)
    elif arch_fields:
        arch = arch.replace(**arch_fields)
    wiring = as_wiring(source, arch, seed)
    check_model_memory(wiring.n_neurons, wiring.n_edges, arch)
    if arch.kind == "layered":
        from topowire.compiler.layered import LayeredRecurrentNet

        return LayeredRecurrentNet(wiring, arch, seed)
    cls = MaskedRecurrentNet if arch.masked_cell else IterativeNet
    return cls(wiring, arch, seed)


def model_parameter_counts(topology: Topology, arch: Arch, init_seed: int) -> dict[str, int]:
    """The effective parameter counts (graph, ..., total) of the model ``compile(topology,
    arch, seed=init_seed)`` builds, without building it where the wiring suffices."""
    if arch.kind == "layered":  # its counts depend on the layer widths of the built model
        return compile(topology, arch, seed=init_seed).parameter_counts()
    return parameter_counts(as_wiring(topology, arch, init_seed), arch)


def check_model_memory(n_neurons: int, n_edges: int, arch: Arch) -> None:
    """Refuse a model whose tensors would exceed the memory limit, before building it.

    Dense: the masked weights, mask and initial draw are ~(gates + 2) float32 N x N
    matrices; sparse backends hold ~3 floats per edge and gate; the input projection and
    the readout (their draw, mask and weight) ~3 floats per neuron, gate and data column.
    """
    from topowire import limits

    gates = GATES[arch.cell] if arch.kind == "layered" else arch.gates
    per_entry = n_neurons * n_neurons if arch.backend in ("dense", "auto") else n_edges
    interface = n_neurons * (gates * arch.d_in + arch.d_out)  # the input projection (and its mask), the readout
    limits.check_memory(4.0 * (per_entry * (gates + 2) + 3 * interface),
                        f"a {arch.kind} model of {n_neurons:,} neurons (d_in {arch.d_in:,}, d_out {arch.d_out:,})")
