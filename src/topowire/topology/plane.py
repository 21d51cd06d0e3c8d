"""graph2nn's (C, L) plane at sampling time: clustering C and average path length L of
candidate graphs, and the stratified selection that keeps one graph per occupied bin.

C and L here are the feature registry's ``avg_clustering`` and ``avg_path_length`` (a test
holds them equal); they are computed here, below the features, because a recipe's
``stratify`` key applies while a population is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from topowire import limits
from topowire.topology.dag import orient_upper
from topowire.topology.topology import Topology

__all__ = ["STRATA", "clustering_and_path_length", "bin_index", "one_per_bin", "coverage"]

#: The features a recipe can stratify on: graph2nn's plane.
STRATA = ("avg_clustering", "avg_path_length")


def clustering_and_path_length(topologies: Sequence[Topology]) -> np.ndarray:
    """``[N, 2]``: mean local clustering (nodes of degree < 2 counting 0) and mean hop
    distance over ordered node pairs of the largest component (0 for one node)."""
    import igraph as ig

    out = np.zeros((len(topologies), 2))
    for i, t in enumerate(topologies):
        limits.check_memory(16.0 * t.n * t.n, f"the path lengths of a graph of {t.n:,} nodes")
        g = ig.Graph(n=t.n, edges=orient_upper(t.edges, t.n), directed=False)
        out[i, 0] = g.transitivity_avglocal_undirected(mode="zero") if t.n else np.nan
        parts = g.connected_components()
        big = parts.subgraph(int(np.argmax(parts.sizes()))) if t.n else g
        k = big.vcount()
        out[i, 1] = float(np.asarray(big.distances()).sum() / (k * (k - 1))) if k > 1 else 0.0
    return out


def bin_index(values: np.ndarray, bins: Sequence[int]) -> np.ndarray:
    """``[N]``: the cell of every row of ``values [N, F]`` in a grid of ``bins[f]`` equal-width
    bins per column over the column's range (a constant column is one bin)."""
    cells = np.zeros(len(values), dtype=np.int64)
    for f, b in enumerate(bins):
        v = values[:, f]
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        k = np.zeros(len(v), dtype=np.int64) if hi <= lo else np.minimum(((v - lo) / (hi - lo) * b).astype(np.int64),
                                                                         b - 1)
        cells = cells * b + k
    return cells


def one_per_bin(values: np.ndarray, bins: Sequence[int]) -> list[int]:
    """The rows kept by stratified selection: the first row (in order) of every occupied
    cell of :func:`bin_index`'s grid, in row order."""
    _, first = np.unique(bin_index(values, bins), return_index=True)
    return sorted(int(i) for i in first)


def coverage(population, bins: Sequence[int] | None = None) -> str:
    """One line on how much of the (C, L) plane a population covers: its occupied cells of a
    grid of ``bins`` (default: its recipe's ``stratify`` grid, else 10 x 10) over its own C
    and L ranges, and the ranges."""
    if bins is None:
        grid = next((dict(f.stratify) for f in (population.recipe.families if population.recipe else ())
                     if f.stratify), {})
        bins = (grid.get("avg_clustering", 10), grid.get("avg_path_length", 10))
    values = clustering_and_path_length(list({t.id: t for t in population}.values()))
    occupied = len(np.unique(bin_index(values, bins)))
    (c_lo, l_lo), (c_hi, l_hi) = np.nanmin(values, 0), np.nanmax(values, 0)
    return (f"(C, L) coverage: {occupied} of the {bins[0] * bins[1]} cells of a {bins[0]} x {bins[1]} grid over "
            f"C {c_lo:.2f}-{c_hi:.2f} and L {l_lo:.2f}-{l_hi:.2f} ({len(values)} distinct graphs)")
