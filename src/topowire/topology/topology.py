"""The :class:`Topology` type: one graph, immutable, identified by its content."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from topowire import checks, limits
from topowire.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import igraph
    import networkx

__all__ = ["Topology", "canonical_edges", "content_id"]

_ID_LEN = 16


def canonical_edges(n: int, edges: Any, directed: bool) -> np.ndarray:
    """Validate an edge list and return it in canonical form.

    Canonical form is an ``(E, 2)`` int64 array sorted lexicographically; for an
    undirected graph every row is ``(min, max)``.

    Parameters
    ----------
    n : int
        Number of nodes; node ids must lie in ``0 .. n-1``.
    edges : array-like of shape (E, 2)
        The edges, as integer node ids.
    directed : bool
        Whether ``(u, v)`` and ``(v, u)`` are different edges.

    Raises
    ------
    ParameterError
        On a non-integer or out-of-range node id, a self-loop or a repeated edge.
    """
    arr = np.asarray(edges)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ParameterError(f"edges must have shape (E, 2), got {arr.shape}")
    if arr.dtype == object and all(isinstance(x, int) and not isinstance(x, bool) for x in arr.ravel().tolist()):
        bad = max(arr.ravel().tolist(), key=abs)  # integers beyond int64
        raise ParameterError(f"node id {bad} is out of range: expected 0 <= id < n = {n}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            bad = next(
                (x for x in arr.ravel().tolist() if not (isinstance(x, int) and not isinstance(x, bool))),
                arr.ravel()[0],
            )
            raise ParameterError(f"node ids must be integers in 0..{n - 1}, got {bad!r}")
    arr = arr.astype(np.int64, copy=False)
    out_of_range = (arr < 0) | (arr >= n)
    if out_of_range.any():
        bad = int(arr[out_of_range][0])
        raise ParameterError(f"node id {bad} is out of range: expected 0 <= id < n = {n}")
    loops = arr[:, 0] == arr[:, 1]
    if loops.any():
        raise ParameterError(f"self-loop at node {int(arr[loops][0, 0])}: topologies are simple graphs")
    if not directed:
        arr = np.sort(arr, axis=1)
    arr = np.unique(arr, axis=0) if len(arr) else arr
    if len(arr) != len(np.asarray(edges)):
        raise ParameterError(
            f"repeated edge in edge list ({len(np.asarray(edges)) - len(arr)} duplicate(s)): "
            "topologies are simple graphs"
        )
    return np.ascontiguousarray(arr)


def content_id(n: int, directed: bool, edges: np.ndarray) -> str:
    """Content hash of a canonical graph: equal graphs (same n, direction, edges) share it."""
    h = hashlib.sha256()
    h.update(f"topowire-topology/1|{n}|{int(bool(directed))}|".encode())
    h.update(np.ascontiguousarray(edges, dtype="<i8").tobytes())
    return h.hexdigest()[:_ID_LEN]


@dataclass(frozen=True, eq=False)
class Topology:
    """One graph on nodes ``0 .. n-1``, immutable and identified by its content.

    Parameters
    ----------
    n : int
        Number of nodes (``n >= 1``).
    edges : array-like of shape (E, 2)
        Edges as node-id pairs. Validated and stored in canonical order.
    directed : bool, default False
        Whether the edges are directed.
    family : str, default "custom"
        The generator family that produced the graph (``"er"``, ``"ws"``, ...).
    params : mapping, optional
        The generator parameters (JSON scalars).
    seed : int, optional
        The seed that regenerates this graph with ``family`` and ``params``.

    Attributes
    ----------
    id : str
        Content hash of ``n``, ``directed`` and the sorted edge list. Two topologies with
        the same graph have the same id whatever their family, params or seed.
    """

    n: int
    edges: np.ndarray
    directed: bool = False
    family: str = "custom"
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    id: str = field(init=False)

    def __post_init__(self) -> None:
        limits.check("nodes", checks.integer("n", self.n, 1), "n")
        edges = canonical_edges(int(self.n), self.edges, bool(self.directed))
        edges.flags.writeable = False
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "directed", bool(self.directed))
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "id", content_id(self.n, self.directed, edges))

    # -- identity ---------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return (
            self.id == other.id
            and self.family == other.family
            and self.params == other.params
            and self.seed == other.seed
        )

    def __hash__(self) -> int:
        return hash((self.id, self.family, self.seed))

    def __repr__(self) -> str:
        kind = "directed" if self.directed else "undirected"
        return (
            f"Topology(id={self.id!r}, family={self.family!r}, n={self.n}, "
            f"n_edges={self.n_edges}, {kind})"
        )

    # -- basic properties -------------------------------------------------------------
    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return int(self.edges.shape[0])

    @property
    def density(self) -> float:
        """Edges over possible edges (``n(n-1)`` directed, ``n(n-1)/2`` undirected)."""
        pairs = self.n * (self.n - 1) / (1 if self.directed else 2)
        return self.n_edges / pairs if pairs else 0.0

    def degrees(self) -> np.ndarray:
        """Total degree of every node (in + out for a directed graph)."""
        return np.bincount(self.edges.ravel(), minlength=self.n)

    def adjacency(self, dtype: Any = np.float64) -> np.ndarray:
        """Dense adjacency matrix ``A[u, v] = 1`` iff ``u -> v`` (symmetric if undirected)."""
        a = np.zeros((self.n, self.n), dtype=dtype)
        u, v = self.edges[:, 0], self.edges[:, 1]
        a[u, v] = 1
        if not self.directed:
            a[v, u] = 1
        return a

    def with_meta(self, *, family: str | None = None, params: Mapping[str, Any] | None = None,
                  seed: int | None = None) -> Topology:
        """Return a copy with other metadata (the graph, hence the id, unchanged)."""
        return Topology(
            self.n, self.edges, self.directed,
            family=self.family if family is None else family,
            params=self.params if params is None else params,
            seed=self.seed if seed is None else seed,
        )

    # -- conversions -----------------------------------------------------------------
    def to_networkx(self) -> networkx.Graph:
        """A ``networkx.Graph`` (or ``DiGraph``) on nodes ``0 .. n-1``."""
        import networkx as nx

        g = nx.DiGraph() if self.directed else nx.Graph()
        g.add_nodes_from(range(self.n))
        g.add_edges_from(self.edges.tolist())
        return g

    def to_igraph(self) -> igraph.Graph:
        """An ``igraph.Graph`` with the same nodes and edges."""
        import igraph as ig

        return ig.Graph(n=self.n, edges=self.edges.tolist(), directed=self.directed)

    @classmethod
    def from_networkx(cls, graph: networkx.Graph, **meta: Any) -> Topology:
        """Build a topology from a networkx graph.

        Node labels that are exactly the integers ``0 .. n-1`` (or their decimal strings)
        are kept; any other labels are numbered in the graph's node order.
        """
        nodes = list(graph.nodes())
        index = _label_index(nodes)
        edges = [(index[u], index[v]) for u, v in graph.edges()]
        return cls(len(nodes), np.array(edges, dtype=np.int64).reshape(-1, 2),
                   graph.is_directed(), **meta)

    @classmethod
    def from_igraph(cls, graph: igraph.Graph, **meta: Any) -> Topology:
        """Build a topology from an igraph graph (vertex ids are kept)."""
        edges = np.array(graph.get_edgelist(), dtype=np.int64).reshape(-1, 2)
        return cls(graph.vcount(), edges, graph.is_directed(), **meta)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the JSONL record of a population)."""
        return {
            "id": self.id,
            "family": self.family,
            "params": dict(self.params),
            "seed": self.seed,
            "n": self.n,
            "directed": self.directed,
            "edges": self.edges.tolist(),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Topology:
        """Inverse of :meth:`to_dict`; checks a stored ``id`` against the content."""
        missing = [k for k in ("n", "edges") if k not in record]
        if missing:
            raise ParameterError(f"topology record lacks {', '.join(missing)}")
        unknown = set(record) - {"id", "family", "params", "seed", "n", "directed", "edges"}
        if unknown:
            raise ParameterError(f"unknown key(s) in topology record: {', '.join(sorted(unknown))}")
        n = limits.check("nodes", checks.integer("n", record["n"], 1), "n")
        edges = record["edges"]
        if not isinstance(edges, list) or any(not isinstance(e, list) or len(e) != 2 for e in edges):
            raise ParameterError("edges must be a list of [u, v] pairs")
        for e in edges:
            for x in e:
                checks.integer("node id", x)
        directed = checks.boolean("directed", record.get("directed", False))
        params = record.get("params") or {}
        if not isinstance(params, dict):
            raise ParameterError(f"params must be an object, got {params!r}")
        seed = record.get("seed")
        checks.integer("seed", seed, 0, checks.SEED_MAX, none=True)
        topo = cls(n, np.array(edges).reshape(-1, 2), directed,  # ids beyond int64 stay objects, refused there
                   family=str(record.get("family", "custom")), params=params, seed=seed)
        stored = record.get("id")
        if stored is not None and stored != topo.id:
            raise ParameterError(
                f"id {stored!r} does not match the graph's content hash {topo.id!r} "
                "(the edges were changed after the id was computed)"
            )
        return topo


def _label_index(nodes: list[Any]) -> dict[Any, int]:
    """Map node labels to 0..n-1: keep integer labels that are exactly 0..n-1."""
    n = len(nodes)
    as_int: list[int] = []
    for x in nodes:
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            as_int.append(int(x))
        elif isinstance(x, str) and x.strip().lstrip("-").isdigit():
            as_int.append(int(x))
        else:
            break
    if len(as_int) == n and sorted(as_int) == list(range(n)):
        return dict(zip(nodes, as_int))
    return {x: i for i, x in enumerate(nodes)}
