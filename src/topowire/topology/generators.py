"""Seeded random-graph generators; every one returns a :class:`~topowire.topology.Topology`.

Conventions follow networkx: ``<model>_graph(n, <paper letters>, *, seed)``, parameters
validated with messages that name the values. ``seed`` is an int, a
``numpy.random.Generator`` or None (fresh entropy); the int actually used is stored in
``Topology.seed`` so ``generate(t.family, seed=t.seed, **t.params)`` rebuilds the graph.
No generator touches global random state.
"""

from __future__ import annotations

import inspect
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
    "generate",
    "resolve_seed",
]

def _pairs(n: int, directed: bool) -> tuple[np.ndarray, np.ndarray]:
    """All candidate node pairs: u < v (undirected) or u != v (directed), row-major."""
    if directed:
        u, v = np.nonzero(~np.eye(n, dtype=bool))
        return u.astype(np.int64), v.astype(np.int64)
    u, v = np.triu_indices(n, 1)
    return u.astype(np.int64), v.astype(np.int64)


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
    limits.check_memory(16 * n * (n - 1) / (1 if directed else 2), f"an ER graph of n = {n:,} (its candidate pairs)")
    u, v = _pairs(n, directed)
    keep = np.random.default_rng(s).random(u.shape[0]) < p
    edges = np.stack([u[keep], v[keep]], axis=1)
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
    u, v = _pairs(n, directed)
    m = checks.integer("m", m, 0, u.shape[0], what=f" for n = {n} ({'directed' if directed else 'undirected'})")
    s = resolve_seed(seed)
    idx = np.sort(np.random.default_rng(s).choice(u.shape[0], size=m, replace=False))
    edges = np.stack([u[idx], v[idx]], axis=1)
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
