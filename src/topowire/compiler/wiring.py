"""Wiring: the compiled connectivity of one network (DESIGN §3-4).

``wire(topology, ...)`` orients the graph's edges, assigns input and output roles, and
computes longest-path layers. Everything is vectorised over the edge array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topowire.errors import NotADAGError, ParameterError
from topowire.topology.dag import dag_layers_or_none, find_cycle, orient_upper
from topowire.topology.topology import Topology

__all__ = ["Wiring", "wire", "ORIENTATIONS", "OUTPUT_ROLES", "BACKENDS"]

ORIENTATIONS = ("dag", "random-dag", "both", "as-is")
#: The neurons a network's readout can read: every neuron, or the sinks (no outgoing edge).
OUTPUT_ROLES = ("all", "sinks")
#: How a wiring's graph weights are stored and multiplied (see :mod:`topowire.compiler.backends`).
BACKENDS = ("dense", "sparse", "torch_sparse", "auto")


@dataclass(frozen=True, eq=False)
class Wiring:
    """Directed connectivity of a network of ``n_neurons`` neurons.

    Attributes
    ----------
    n_neurons : int
        Number of neurons (the topology's nodes).
    edges : ndarray of shape (E, 2)
        Directed connections ``src -> dst``, sorted.
    inputs : ndarray of int
        Neurons that receive the input projection (sorted).
    outputs : ndarray of int
        Neurons the readout reads (sorted).
    orientation : str
        The orientation that produced ``edges``.
    layer : ndarray of int or None
        Longest-path depth of every neuron when the wiring is a DAG, else None.
    topology_id : str or None
        Id of the topology it was wired from.
    """

    n_neurons: int
    edges: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray
    orientation: str = "as-is"
    layer: np.ndarray | None = None
    topology_id: str | None = None
    on_path: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = self.n_neurons
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if edges.size and (edges.min() < 0 or edges.max() >= n):
            bad = int(edges.min() if edges.min() < 0 else edges.max())
            raise ParameterError(f"edge endpoint {bad} is out of range 0..{n - 1}")
        for name in ("inputs", "outputs"):
            idx = np.unique(np.asarray(getattr(self, name), dtype=np.int64))
            if idx.size == 0:
                raise ParameterError(f"a wiring needs at least one {name[:-1]} neuron")
            if idx.min() < 0 or idx.max() >= n:
                raise ParameterError(f"{name} neuron {int(idx.max())} is out of range 0..{n - 1}")
            idx.flags.writeable = False
            object.__setattr__(self, name, idx)
        edges.flags.writeable = False
        object.__setattr__(self, "edges", edges)
        on_path = _on_path(n, edges, self.inputs, self.outputs)
        if not on_path.any():
            raise ParameterError(
                f"no path from any input neuron ({_few(self.inputs)}) to any output neuron "
                f"({_few(self.outputs)}): the network could not carry data to its readout"
            )
        on_path.flags.writeable = False
        object.__setattr__(self, "on_path", on_path)

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def is_dag(self) -> bool:
        return self.layer is not None

    @property
    def depth(self) -> int:
        """Length of the longest path (DAG wirings only)."""
        if self.layer is None:
            raise NotADAGError("depth is defined for acyclic wirings only")
        return int(self.layer.max())

    @property
    def n_off_path(self) -> int:
        """Neurons on no input -> output path (they cannot affect the output)."""
        return int((~self.on_path).sum())

    @property
    def off_path_fraction(self) -> float:
        return self.n_off_path / self.n_neurons

    def mask(self) -> np.ndarray:
        """``mask[v, u] = 1`` iff ``u -> v`` (the row-major form of ``W @ h``), float32."""
        m = np.zeros((self.n_neurons, self.n_neurons), dtype=np.float32)
        m[self.edges[:, 1], self.edges[:, 0]] = 1.0
        return m

    def require_dag(self) -> None:
        """Raise :class:`NotADAGError` naming a cycle unless the wiring is acyclic."""
        if self.layer is None:
            cycle = find_cycle(self.n_neurons, self.edges)
            raise NotADAGError(
                "a feed-forward target needs an acyclic wiring, but this one has the cycle "
                + " -> ".join(map(str, cycle))
                + " (orient with 'dag' or 'random-dag', or use a recurrent target)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"n_neurons": self.n_neurons, "edges": self.edges.tolist(),
                "inputs": self.inputs.tolist(), "outputs": self.outputs.tolist(),
                "orientation": self.orientation, "topology_id": self.topology_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Wiring:
        from topowire import checks, limits

        n = limits.check("nodes", checks.integer("n_neurons", d["n_neurons"], 1), "n_neurons")
        for name in ("edges", "inputs", "outputs"):
            values = np.asarray(d[name], dtype=object).ravel().tolist()
            for v in values:
                checks.integer(f"a wiring's {name[:-1]}", v, 0, n - 1)
        edges = np.asarray(d["edges"], dtype=np.int64).reshape(-1, 2)
        return cls(int(d["n_neurons"]), edges, np.asarray(d["inputs"]), np.asarray(d["outputs"]),
                   orientation=d.get("orientation", "as-is"), layer=_layers_or_none(int(d["n_neurons"]), edges),
                   topology_id=d.get("topology_id"))

    def __repr__(self) -> str:
        kind = f"depth={self.depth}" if self.is_dag else "cyclic"
        return (f"Wiring(n_neurons={self.n_neurons}, n_edges={self.n_edges}, inputs={len(self.inputs)}, "
                f"outputs={len(self.outputs)}, orientation={self.orientation!r}, {kind}, "
                f"off_path={self.n_off_path})")


def _few(idx: np.ndarray) -> str:
    s = ", ".join(map(str, idx[:5].tolist()))
    return s + (", ..." if len(idx) > 5 else "")


def _reach(n: int, src: np.ndarray, dst: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Nodes reachable from ``start`` (inclusive): one vectorised sweep per BFS level."""
    seen = np.zeros(n, dtype=bool)
    seen[start] = True
    while True:
        hit = dst[seen[src]]
        if seen[hit].all():
            return seen
        seen[hit] = True


def _on_path(n: int, edges: np.ndarray, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    src, dst = edges[:, 0], edges[:, 1]
    return _reach(n, src, dst, inputs) & _reach(n, dst, src, outputs)


def _layers_or_none(n: int, edges: np.ndarray) -> np.ndarray | None:
    layer = dag_layers_or_none(n, edges)
    if layer is not None:
        layer.flags.writeable = False
    return layer


def _orient(topology: Topology, orientation: str, rng: np.random.Generator) -> np.ndarray:
    e = topology.edges
    if orientation == "dag":
        return orient_upper(e, topology.n)
    if orientation == "random-dag":
        perm = rng.permutation(topology.n)  # rank of each node in a random topological order
        und = orient_upper(e, topology.n)
        flip = perm[und[:, 0]] > perm[und[:, 1]]
        out = np.where(flip[:, None], und[:, ::-1], und)
        return out[np.lexsort((out[:, 1], out[:, 0]))]
    if orientation == "both":
        und = orient_upper(e, topology.n)
        out = np.concatenate([und, und[:, ::-1]])
        return out[np.lexsort((out[:, 1], out[:, 0]))]
    if orientation == "as-is":
        if not topology.directed:
            raise ParameterError(
                "orientation 'as-is' keeps a directed graph, but this topology is undirected: "
                "use 'dag', 'random-dag' or 'both'"
            )
        return e
    raise ParameterError(f"unknown orientation {orientation!r}: expected one of {', '.join(ORIENTATIONS)}")


def _roles(role: str | int, n: int, edges: np.ndarray, what: str, orientation: str) -> np.ndarray:
    indeg = np.bincount(edges[:, 1], minlength=n)
    outdeg = np.bincount(edges[:, 0], minlength=n)
    if role == "all":
        return np.arange(n)
    if what == "inputs" and role == "sources":
        idx = np.flatnonzero(indeg == 0)
    elif what == "outputs" and role == "sinks":
        idx = np.flatnonzero(outdeg == 0)
    elif what == "inputs" and isinstance(role, (int, np.integer)) and not isinstance(role, bool):
        if not 1 <= role <= n:
            raise ParameterError(f"inputs = {role}: the top-k input count must satisfy 1 <= k <= n = {n}")
        deg = indeg + outdeg
        idx = np.sort(np.argsort(-deg, kind="stable")[: int(role)])  # ties: lower id first
    else:
        allowed = "'all', 'sources' or an int k (top-k by degree)" if what == "inputs" else \
            " or ".join(map(repr, OUTPUT_ROLES))
        raise ParameterError(f"{what} = {role!r}: expected {allowed}")
    if idx.size == 0:
        role = "source" if what == "inputs" else "sink"
        raise ParameterError(
            f"{what} = {role!r} found no {role} neuron under orientation {orientation!r} "
            f"(every neuron has an {'incoming' if what == 'inputs' else 'outgoing'} edge): use 'all'"
            + (" or a top-k count" if what == "inputs" else "")
        )
    return idx


def wire(
    topology: Topology,
    orientation: str = "dag",
    inputs: str | int = "sources",
    outputs: str = "sinks",
    *,
    seed: int | None = None,
) -> Wiring:
    """Compile a topology's connectivity: orientation, roles, layers.

    Parameters
    ----------
    topology : Topology
        The graph; its nodes become neurons.
    orientation : {"dag", "random-dag", "both", "as-is"}, default "dag"
        ``dag`` orients ``u - v`` as ``u -> v`` when ``u < v`` (acyclic); ``random-dag``
        does the same under a seeded node permutation; ``both`` makes every edge two
        connections (symmetric recurrence); ``as-is`` keeps a directed topology.
    inputs : {"all", "sources"} or int, default "sources"
        Neurons that receive the input projection: all, those with no incoming
        connection, or the k of highest degree.
    outputs : {"all", "sinks"}, default "sinks"
        Neurons the readout reads: all, or those with no outgoing connection.
    seed : int, optional
        Seed of the ``random-dag`` permutation.

    Raises
    ------
    ParameterError
        Unknown orientation or role, no neuron with the requested role, or no path from
        any input to any output.
    """
    if not isinstance(topology, Topology):
        raise TypeError(f"wire() takes a Topology, got {type(topology).__name__}")
    if orientation == "random-dag" and seed is None:
        seed = topology.seed if topology.seed is not None else 0
    rng = np.random.default_rng(seed)
    edges = _orient(topology, orientation, rng)
    n = topology.n
    return Wiring(
        n, edges,
        _roles(inputs, n, edges, "inputs", orientation),
        _roles(outputs, n, edges, "outputs", orientation),
        orientation=orientation,
        layer=_layers_or_none(n, edges),
        topology_id=topology.id,
    )
