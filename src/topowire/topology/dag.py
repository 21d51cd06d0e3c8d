"""Vectorised DAG helpers on edge arrays: orientation, cycle detection, longest-path layers."""

from __future__ import annotations

import numpy as np

from topowire.errors import NotADAGError

__all__ = ["orient_upper", "longest_path_layers", "longest_path_heights", "dag_layers_or_none", "find_cycle"]


def orient_upper(edges: np.ndarray, n: int) -> np.ndarray:
    """Orient every edge ``u - v`` as ``min -> max``, drop repeats, sort (acyclic by construction)."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    keys = np.unique(e.min(axis=1) * n + e.max(axis=1))
    return np.stack([keys // n, keys % n], axis=1)


def _peel(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Longest distance from any node with no incoming edge, by vectorised Kahn peeling.

    Each sweep removes the nodes whose remaining in-degree is zero; the sweep that removes
    a node is its longest-path depth. Only the out-edges of the removed nodes are touched
    (a CSR gather), so the whole peel is O(E + n) plus a few numpy calls per layer. Nodes
    left unremoved lie on or behind a cycle.
    """
    order = np.argsort(src, kind="stable")
    dst_sorted = dst[order]
    starts = np.searchsorted(src[order], np.arange(n + 1))
    indeg = np.bincount(dst, minlength=n)
    depth = np.full(n, -1, dtype=np.int64)
    frontier = np.flatnonzero(indeg == 0)
    k = 0
    while frontier.size:
        depth[frontier] = k
        counts = starts[frontier + 1] - starts[frontier]
        total = int(counts.sum())
        if not total:
            break
        offsets = np.repeat(starts[frontier] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        targets = dst_sorted[offsets + np.arange(total)]
        np.subtract.at(indeg, targets, 1)
        cand = np.unique(targets)
        frontier = cand[indeg[cand] == 0]
        k += 1
    return depth


def _relax(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    depth = _peel(n, src, dst)
    if (depth < 0).any():
        cycle = find_cycle(n, np.stack([src, dst], axis=1))
        raise NotADAGError(
            "expected a directed acyclic graph, but it has the cycle " + " -> ".join(map(str, cycle))
        )
    return depth


def longest_path_layers(n: int, edges: np.ndarray) -> np.ndarray:
    """Layer of every node: the length of the longest path that ends at it.

    Parameters
    ----------
    n : int
        Number of nodes.
    edges : ndarray of shape (E, 2)
        Directed edges ``u -> v`` of a DAG.

    Returns
    -------
    ndarray of int64, shape (n,)
        0 for sources (and isolated nodes); ``max(layer[u] + 1)`` over predecessors else.

    Raises
    ------
    NotADAGError
        The edges contain a directed cycle (one is named).
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return _relax(n, edges[:, 0], edges[:, 1])


def dag_layers_or_none(n: int, edges: np.ndarray) -> np.ndarray | None:
    """:func:`longest_path_layers`, or None for a cyclic graph (without naming a cycle)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    depth = _peel(n, edges[:, 0], edges[:, 1])
    return None if (depth < 0).any() else depth


def longest_path_heights(n: int, edges: np.ndarray) -> np.ndarray:
    """Length of the longest path that starts at every node (0 for sinks)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return _relax(n, edges[:, 1], edges[:, 0])


def find_cycle(n: int, edges: np.ndarray) -> list[int]:
    """One directed cycle as a node list ``[v0, v1, ..., v0]``, or ``[]`` for a DAG."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(np.asarray(edges).reshape(-1, 2).tolist())
    try:
        cyc = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return []
    return [int(u) for u, _ in cyc] + [int(cyc[0][0])]
