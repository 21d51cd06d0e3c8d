"""Seeded random-graph generators; every one returns a :class:`~topowire.topology.Topology`.

Conventions follow networkx: ``<model>_graph(n, <paper letters>, *, seed)``, parameters
validated with messages that name the values. ``seed`` is an int, a
``numpy.random.Generator`` or None (fresh entropy); the int actually used is stored in
``Topology.seed`` so ``generate(t.family, seed=t.seed, **t.params)`` rebuilds the graph.
No generator touches global random state.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from topowire import checks, limits
from topowire.errors import ParameterError
from topowire.seeds import SeedLike, resolve_seed
from topowire.topology.topology import Topology

__all__ = [
    "er_graph",
    "gnm_graph",
    "ws_graph",
    "wsflex_graph",
    "ba_graph",
    "ring_lattice",
    "regular_graph",
    "complete_graph",
    "mlp_graph",
    "FAMILIES",
    "edge_bound",
    "generate",
    "resolve_seed",
]

#: Bytes a generator's arrays take per edge at their peak (estimated up front against the
#: memory limit): numpy's edge lists (pairs computed from their indices), networkx's graphs.
EDGE_BYTES, NX_EDGE_BYTES = 64, 600
#: Candidate pairs of an ER graph drawn at once.
ER_BLOCK = 2**20


def _check_edges(n_edges: int, per_edge: float, what: str) -> None:
    """Refuse a graph whose arrays, ``per_edge`` bytes for each of ``n_edges``, exceed the
    memory limit -- before any is made."""
    limits.check_memory(float(n_edges) * per_edge, f"{what} ({n_edges:,} edges)")


def _n_pairs(n: int, directed: bool) -> int:
    return n * (n - 1) // (1 if directed else 2)


def _pair_of(index: np.ndarray, n: int, directed: bool) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs at these row-major indices -- u < v (undirected) or u != v
    (directed) -- computed, not looked up in a table of all n^2 pairs."""
    index = np.asarray(index, dtype=np.int64)
    if directed:
        u, r = np.divmod(index, n - 1)
        return u, r + (r >= u)
    # row u starts at S(u) = u (2n - u - 1) / 2: invert it, then correct the float's rounding
    u = np.floor(((2 * n - 1) - np.sqrt((2 * n - 1) ** 2 - 8.0 * index)) / 2).astype(np.int64)
    start = u * (2 * n - u - 1) // 2
    u = np.where(start > index, u - 1, u)
    start = u * (2 * n - u - 1) // 2
    ahead = index >= start + (n - 1 - u)
    u = np.where(ahead, u + 1, u)
    start = u * (2 * n - u - 1) // 2
    return u, u + 1 + index - start


def _pairs(n: int, directed: bool) -> tuple[np.ndarray, np.ndarray]:
    """All candidate node pairs: u < v (undirected) or u != v (directed), row-major."""
    return _pair_of(np.arange(_n_pairs(n, directed), dtype=np.int64), n, directed)


def er_graph(n: int, p: float, *, directed: bool = False, seed: SeedLike = None) -> Topology:
    """Erdős–Rényi G(n, p): every pair is an edge independently with probability p.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 2``.
    p : float
        Edge probability in [0, 1].
    directed : bool, default False
        Draw each ordered pair ``u -> v`` (u != v) independently.
    seed : int, Generator or None
        Random seed.

    References
    ----------
    .. [1] P. Erdős and A. Rényi, "On random graphs I", Publ. Math. Debrecen 6, 1959.
    .. [2] E. N. Gilbert, "Random graphs", Ann. Math. Stat. 30, 1959.
    """
    n = limits.check("nodes", checks.integer("n", n, 2), "n")
    p = checks.number("p", p, 0.0, 1.0)
    directed = checks.boolean("directed", directed)
    s = resolve_seed(seed)
    pairs = _n_pairs(n, directed)
    _check_edges(math.ceil(pairs * p), EDGE_BYTES, f"an ER graph of n = {n:,}, p = {p:g} (expected)")
    rng, kept = np.random.default_rng(s), []
    for start in range(0, pairs, ER_BLOCK):  # one draw per pair, in blocks: the same stream as one call
        kept.append(start + np.flatnonzero(rng.random(min(ER_BLOCK, pairs - start)) < p))
    edges = np.stack(_pair_of(np.concatenate(kept) if kept else np.zeros(0, np.int64), n, directed), axis=1)
    return Topology(n, edges, directed, family="er",
                    params={"n": n, "p": p, "directed": directed}, seed=s)


def gnm_graph(n: int, m: int, *, directed: bool = False, seed: SeedLike = None) -> Topology:
    """Erdős–Rényi G(n, m): m edges drawn uniformly without replacement.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 2``.
    m : int
        Number of edges, ``0 <= m <= n(n-1)/2`` (``n(n-1)`` if directed).
    directed : bool, default False
        Draw ordered pairs.
    seed : int, Generator or None
        Random seed.
    """
    n = limits.check("nodes", checks.integer("n", n, 2), "n")
    directed = checks.boolean("directed", directed)
    pairs = _n_pairs(n, directed)
    m = checks.integer("m", m, 0, pairs, what=f" for n = {n} ({'directed' if directed else 'undirected'})")
    s = resolve_seed(seed)
    # numpy draws a small share of the pairs by a set, a large one by shuffling all of them
    _check_edges(m, EDGE_BYTES + (8.0 * pairs / max(m, 1) if m > pairs // 50 else 0), f"a G(n, m) graph of n = {n:,}")
    idx = np.sort(np.random.default_rng(s).choice(pairs, size=m, replace=False))
    edges = np.stack(_pair_of(idx, n, directed), axis=1)
    return Topology(n, edges, directed, family="gnm",
                    params={"n": n, "m": m, "directed": directed}, seed=s)


def _check_lattice(n: int, k: int) -> tuple[int, int]:
    n = limits.check("nodes", checks.integer("n", n, 2), "n")
    k = checks.integer("k", k)
    if k < 2 or k % 2 or k >= n:
        raise ParameterError(f"k must be even with 2 <= k < n, got k = {k}, n = {n}")
    return n, k


def _lattice_edges(n: int, k: int) -> np.ndarray:
    i = np.arange(n, dtype=np.int64)
    return np.concatenate([np.stack([i, (i + j) % n], axis=1) for j in range(1, k // 2 + 1)])


def ws_graph(n: int, k: int, p: float, *, connected: bool = False, tries: int = 100,
             seed: SeedLike = None) -> Topology:
    """Watts–Strogatz small-world graph.

    A ring of n nodes, each joined to its k nearest neighbours (k/2 on each side); every
    edge is then rewired with probability p to a uniformly chosen node (no self-loops or
    repeated edges).

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 3``.
    k : int
        Even degree of the starting ring lattice, ``2 <= k < n``.
    p : float
        Rewiring probability in [0, 1].
    connected : bool, default False
        Redraw (up to ``tries`` times) until the graph is connected.
    tries : int, default 100
        Attempts for the connected variant.
    seed : int, Generator or None
        Random seed.

    References
    ----------
    .. [1] D. J. Watts and S. H. Strogatz, "Collective dynamics of 'small-world'
       networks", Nature 393, 1998.
    """
    import networkx as nx

    n, k = _check_lattice(n, k)
    p = checks.number("p", p, 0.0, 1.0)
    connected = checks.boolean("connected", connected)
    tries = checks.integer("tries", tries, 1)
    s = resolve_seed(seed)
    _check_edges(n * k // 2, NX_EDGE_BYTES, f"a Watts-Strogatz graph of n = {n:,}, k = {k:,}")
    params: dict[str, Any] = {"n": n, "k": k, "p": p}
    if connected:
        params.update(connected=True, tries=tries)
        try:
            g = nx.connected_watts_strogatz_graph(n, k, p, tries=tries, seed=s)
        except nx.NetworkXError:
            raise ParameterError(
                f"no connected Watts-Strogatz graph in {tries} tries for n = {n}, k = {k}, p = {p}"
            ) from None
    else:
        g = nx.watts_strogatz_graph(n, k, p, seed=s)
    return Topology.from_networkx(g, family="ws", params=params, seed=s)


def _even_lattice(n: int, n_edges: int) -> list[tuple[int, int]]:
    """``n_edges`` edges on a ring of n nodes, spread as evenly as possible: every node
    joined to its d = n_edges // n next neighbours, then the remaining edges added as
    matchings among the nodes of lowest degree, nearest on the ring first -- so degrees
    differ by at most one (graph2nn's own code gives the remaining reach to the first nodes,
    which can leave degrees two apart, e.g. n = 10, k = 3)."""
    import itertools

    import networkx as nx

    def ring(u: int, v: int) -> int:
        return min((u - v) % n, (v - u) % n)

    d = n_edges // n
    edges = {tuple(sorted((i, (i + j) % n))) for i in range(n) for j in range(1, d + 1)}
    degree = np.full(n, 2 * d)
    while len(edges) < n_edges:
        low = [v for v in range(n) if degree[v] == degree.min()]
        h = nx.Graph()
        h.add_weighted_edges_from((u, v, n - ring(u, v)) for u, v in itertools.combinations(low, 2)
                                  if (u, v) not in edges)
        take = sorted((tuple(sorted(e)) for e in nx.max_weight_matching(h, maxcardinality=True)),
                      key=lambda e: (ring(*e), e))[:n_edges - len(edges)]
        if not take:  # one node of lowest degree left: joined to its nearest free neighbour
            u = low[0]
            take = [tuple(sorted((u, min((v for v in range(n) if v != u and tuple(sorted((u, v))) not in edges),
                                         key=lambda v: (degree[v], ring(u, v), v)))))]
        for u, v in take:
            edges.add((u, v))
            degree[[u, v]] += 1
    return sorted(edges)


def wsflex_graph(n: int, k: float, p: float, *, connected: bool = True, tries: int = 100,
                 seed: SeedLike = None) -> Topology:
    """WS-flex: a Watts–Strogatz graph of real-valued mean degree (graph2nn, You et al. 2020).

    ``round(k n / 2)`` edges spread as evenly as possible on a ring (degrees differ by at
    most one), then every edge, taken from its lower ring end, rewired with probability p to
    a uniformly chosen node (no self-loop, no repeated edge; skipped when its node already
    reaches every other). With ``connected`` it is drawn again until connected.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 3``.
    k : float
        Mean degree, ``2 <= k <= n - 1`` (a real number: ``round(k n / 2)`` edges).
    p : float
        Rewiring probability in [0, 1].
    connected : bool, default True
        Redraw (up to ``tries`` times) until the graph is connected, as graph2nn does.
    tries : int, default 100
        Attempts for the connected variant.
    seed : int, Generator or None
        Random seed.

    References
    ----------
    .. [1] J. You, J. Leskovec, K. He and S. Xie, "Graph Structure of Neural Networks",
       ICML 2020 (arXiv 2007.06559).
    """
    n = limits.check("nodes", checks.integer("n", n, 3), "n")
    k = checks.number("k", k, 2.0, n - 1.0, what=f" for n = {n}")
    p = checks.number("p", p, 0.0, 1.0)
    connected = checks.boolean("connected", connected)
    tries = checks.integer("tries", tries, 1)
    s = resolve_seed(seed)
    limits.check_memory(16.0 * n * n, f"a WS-flex graph of n = {n:,}")
    lattice = _even_lattice(n, int(round(k * n / 2)))
    rng = np.random.default_rng(s)
    for _ in range(tries):
        adjacent = np.zeros((n, n), dtype=bool)
        for u, v in lattice:
            adjacent[u, v] = adjacent[v, u] = True
        for u, v in lattice:  # rewire the far end of each edge, in lattice order
            if rng.random() < p and adjacent[u].sum() < n - 1:
                free = np.flatnonzero(~adjacent[u])
                w = int(rng.choice(free[free != u]))
                adjacent[u, v] = adjacent[v, u] = False
                adjacent[u, w] = adjacent[w, u] = True
        edges = np.argwhere(np.triu(adjacent, 1))
        topo = Topology(n, edges, False, family="wsflex", params={"n": n, "k": k, "p": p}, seed=s)
        if not connected or topo.to_igraph().is_connected():
            return topo
    raise ParameterError(f"no connected WS-flex graph in {tries} tries for n = {n}, k = {k}, p = {p}")


def ba_graph(n: int, m: int, *, seed: SeedLike = None) -> Topology:
    """Barabási–Albert preferential-attachment graph.

    Nodes arrive one at a time, each attached by m edges to existing nodes chosen with
    probability proportional to their degree.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 2``.
    m : int
        Edges added per new node, ``1 <= m < n``.
    seed : int, Generator or None
        Random seed.

    References
    ----------
    .. [1] A.-L. Barabási and R. Albert, "Emergence of scaling in random networks",
       Science 286, 1999.
    """
    import networkx as nx

    n = limits.check("nodes", checks.integer("n", n, 2), "n")
    m = checks.integer("m", m, 1, n - 1, what=f" for n = {n}")
    s = resolve_seed(seed)
    _check_edges((n - m) * m, NX_EDGE_BYTES, f"a BA graph of n = {n:,}, m = {m:,}")
    g = nx.barabasi_albert_graph(n, int(m), seed=s)
    return Topology.from_networkx(g, family="ba", params={"n": n, "m": int(m)}, seed=s)


def ring_lattice(n: int, k: int, *, seed: SeedLike = None) -> Topology:
    """Ring lattice: node i joined to i±1, ..., i±k/2 (mod n); Watts–Strogatz at p = 0.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 3``.
    k : int
        Even degree, ``2 <= k < n``.
    seed : ignored
        Accepted so every family has the same call form (the lattice is not random).
    """
    n, k = _check_lattice(n, k)
    _check_edges(n * k // 2, EDGE_BYTES, f"a ring lattice of n = {n:,}, k = {k:,}")
    return Topology(n, _lattice_edges(n, k), False, family="ring",
                    params={"n": n, "k": k}, seed=None if seed is None else resolve_seed(seed))


def regular_graph(n: int, d: int, *, seed: SeedLike = None) -> Topology:
    """Uniform random d-regular graph.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 2``.
    d : int
        Degree of every node, ``0 <= d < n`` with ``n * d`` even.
    seed : int, Generator or None
        Random seed.

    References
    ----------
    .. [1] A. Steger and N. C. Wormald, "Generating random regular graphs quickly",
       Combinatorics, Probability and Computing 8, 1999.
    """
    import networkx as nx

    n = limits.check("nodes", checks.integer("n", n, 2), "n")
    d = checks.integer("d", d, 0, n - 1, what=f" for n = {n}")
    if (n * d) % 2:
        raise ParameterError(f"n * d must be even for a d-regular graph, got n = {n}, d = {d}")
    s = resolve_seed(seed)
    _check_edges(n * d // 2, NX_EDGE_BYTES, f"a {d:,}-regular graph of n = {n:,}")
    g = nx.random_regular_graph(d, n, seed=s)
    return Topology.from_networkx(g, family="regular", params={"n": n, "d": d}, seed=s)


def complete_graph(n: int, *, seed: SeedLike = None) -> Topology:
    """The complete graph K_n.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 2``.
    seed : ignored
        Accepted for a uniform call form.
    """
    n = limits.check("nodes", checks.integer("n", n, 2), "n")
    _check_edges(_n_pairs(n, False), EDGE_BYTES, f"the complete graph of n = {n:,}")
    u, v = _pairs(n, False)
    return Topology(n, np.stack([u, v], axis=1), False, family="complete", params={"n": n},
                    seed=None if seed is None else resolve_seed(seed))


def mlp_graph(sizes: Sequence[int], *, seed: SeedLike = None) -> Topology:
    """The directed graph of a dense layered MLP: every neuron of layer l feeds every
    neuron of layer l+1.

    Nodes are numbered layer by layer, so ``u < v`` on every edge and the graph is a DAG
    whose sources are the first layer and whose sinks are the last.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, at least two, each ``>= 1``.
    seed : ignored
        Accepted for a uniform call form.
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ParameterError(f"sizes must be a list of at least two layer widths, got {sizes!r}")
    sizes = [checks.integer("sizes[i]", s, 1) for s in sizes]
    limits.check("nodes", sum(sizes), "sum(sizes)")
    n_edges = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    limits.check_memory(64.0 * n_edges, f"an MLP graph of {n_edges:,} edges")  # meshgrids, pairs, sorting
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    blocks = []
    for lo, mid, hi in zip(offsets[:-2], offsets[1:-1], offsets[2:]):
        u, v = np.meshgrid(np.arange(lo, mid), np.arange(mid, hi), indexing="ij")
        blocks.append(np.stack([u.ravel(), v.ravel()], axis=1))
    return Topology(int(offsets[-1]), np.concatenate(blocks), True, family="mlp",
                    params={"sizes": list(sizes)},
                    seed=None if seed is None else resolve_seed(seed))


#: Every generator by family name (the ``kind`` of a recipe family).
FAMILIES: dict[str, Callable[..., Topology]] = {
    "er": er_graph,
    "gnm": gnm_graph,
    "ws": ws_graph,
    "wsflex": wsflex_graph,
    "ba": ba_graph,
    "ring": ring_lattice,
    "regular": regular_graph,
    "complete": complete_graph,
    "mlp": mlp_graph,
}
checks.declare("family", checks.Domain("choice", choices=FAMILIES, none=True))


def edge_bound(family: str, params: dict[str, Any]) -> int:
    """The most edges a graph of ``family`` with these parameters can have (ER: its expected
    count), from the parameters alone -- before it is drawn."""
    n = int(params.get("n") or 0)
    pairs = n * (n - 1) // (1 if params.get("directed") else 2)
    bounds = {"er": lambda: math.ceil(pairs * float(params.get("p", 1.0))), "gnm": lambda: int(params.get("m", 0)),
              "ws": lambda: n * int(params.get("k", 0)) // 2, "ring": lambda: n * int(params.get("k", 0)) // 2,
              "wsflex": lambda: round(float(params.get("k", 0)) * n / 2), "complete": lambda: pairs,
              "ba": lambda: max(0, n - int(params.get("m", 0))) * int(params.get("m", 0)),
              "regular": lambda: n * int(params.get("d", 0)) // 2,
              "mlp": lambda: sum(a * b for a, b in zip(params.get("sizes", ())[:-1], params.get("sizes", ())[1:]))}
    return bounds[family]() if family in bounds else pairs


def family_parameters(family: str) -> tuple[list[str], list[str]]:
    """The (required, optional) parameter names of a family, ``seed`` excluded."""
    fn = _family(family)
    required, optional = [], []
    for name, par in inspect.signature(fn).parameters.items():
        if name == "seed":
            continue
        (required if par.default is inspect.Parameter.empty else optional).append(name)
    return required, optional


def check_parameter_names(family: str, names, *, prefix: str = "", noun: str = "parameter(s)",
                          also: tuple[str, ...] = ()) -> None:
    """Raise ParameterError on names a family does not take, or required ones missing.

    ``prefix`` starts the message (a recipe names its family entry); ``also`` lists keys
    accepted besides the parameters (a recipe's ``kind`` and ``count``).
    """
    required, optional = family_parameters(family)
    unknown = sorted(set(names) - set(required) - set(optional))
    if unknown:
        raise ParameterError(
            f"{prefix}unknown {noun} {', '.join(unknown)}" + ("" if prefix else f" for family {family!r}")
            + f": expected {', '.join([*also, *required, *optional])}"
        )
    missing = [r for r in required if r not in names]
    if missing:
        need = "missing parameter(s)" if prefix else f"family {family!r} needs parameter(s)"
        raise ParameterError(f"{prefix}{need} {', '.join(missing)}")


def _family(family: str) -> Callable[..., Topology]:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ParameterError(
            f"unknown family {family!r}: expected one of {', '.join(sorted(FAMILIES))}"
        ) from None


def generate(family: str, *, seed: SeedLike = None, **params: Any) -> Topology:
    """Generate one graph of a named family.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    seed : int, Generator or None
        Random seed.
    **params
        The family's parameters; unknown or missing names are errors.
    """
    fn = _family(family)
    check_parameter_names(family, params)
    return fn(**params, seed=seed)
