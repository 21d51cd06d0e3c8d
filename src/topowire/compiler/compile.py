"""``compile(topology_or_wiring, arch)``: a graph becomes a network (through its target);
``pack(sources, arch, seeds)``: graphs become one packed program."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from topowire.compiler.arch import Arch
from topowire.compiler.wiring import Wiring, wire
from topowire.errors import ParameterError
from topowire.topology.topology import Topology

__all__ = ["compile", "pack", "unpack", "as_wiring", "model_parameter_counts", "check_model_memory"]


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
        The target's model (:meth:`~topowire.compiler.targets.Target.build`): an
        :class:`~topowire.compiler.targets.iterative.IterativeNet`, a
        :class:`~topowire.compiler.targets.recurrent.MaskedRecurrentNet`, a
        :class:`~topowire.compiler.targets.layered.LayeredRecurrentNet`, ...

    Raises
    ------
    NotADAGError
        A cyclic wiring for a feed-forward target without an explicit ``iterations``.
    """
    if isinstance(arch, str):
        arch = Arch(kind=arch, **arch_fields)
    elif arch_fields:
        arch = arch.replace(**arch_fields)
    wiring = as_wiring(source, arch, seed)
    check_model_memory(wiring.n_neurons, wiring.n_edges, arch)
    return arch.target.build(wiring, arch, seed)


def model_parameter_counts(topology: Topology, arch: Arch, init_seed: int) -> dict[str, int]:
    """The effective parameter counts (graph, ..., total) of the model ``compile(topology,
    arch, seed=init_seed)`` builds, without building it where the wiring suffices."""
    return arch.target.parameter_counts(as_wiring(topology, arch, init_seed), arch, init_seed)


def check_model_memory(n_neurons: int, n_edges: int, arch: Arch) -> None:
    """Refuse a model whose tensors would exceed the memory limit, before building it
    (the target's estimate, :meth:`~topowire.compiler.targets.Target.model_bytes`)."""
    from topowire import limits

    limits.check_memory(arch.target.model_bytes(n_neurons, n_edges, arch),
                        f"a {arch.kind} model of {n_neurons:,} neurons (d_in {arch.d_in:,}, d_out {arch.d_out:,})")


def pack(sources: Sequence[Topology | Wiring], arch: Arch | str, seeds: Sequence[int] | None = None,
         **arch_fields) -> nn.Module:
    """Pack topologies (wired with ``arch``) or wirings into one program, for every target.

    The packed counterpart of :func:`~topowire.compiler.compile`: model p of the pack
    starts exactly as ``compile(sources[p], arch, seed=seeds[p])`` (the same wiring rule,
    the same initial weights) and ``unpack(p)`` returns it standalone.

    Parameters
    ----------
    sources : sequence of Topology or Wiring
        The models' graphs.
    arch : Arch or str
        One arch for all; a string is ``Arch(kind=arch, **arch_fields)``.
    seeds : sequence of int, optional
        Initialisation seed of every model (default 0 each, as :func:`compile`).

    Returns
    -------
    The target's pack (:class:`PackedPopulation` for the targets built from their tensors).
    """
    if isinstance(arch, str):
        arch = Arch(kind=arch, **arch_fields)
    elif arch_fields:
        arch = arch.replace(**arch_fields)
    seeds = [0] * len(sources) if seeds is None else list(seeds)
    if len(seeds) != len(sources):
        raise ParameterError(f"got {len(seeds)} seeds for {len(sources)} wirings")
    wirings = [as_wiring(s, arch, seed) for s, seed in zip(sources, seeds)]
    return arch.target.pack(wirings, arch, seeds)


def unpack(packed: nn.Module, p: int) -> nn.Module:
    """Model p of a pack as a standalone module (``packed.unpack(p)``)."""
    return packed.unpack(p)
