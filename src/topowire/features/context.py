"""Per-graph cache of the intermediate results that features share.

Structural features are computed on the *undirected simple graph underlying* the
topology: a directed edge counts as an undirected one and reciprocal pairs merge. The
``dag`` group uses the ``u < v`` orientation of that graph (the compiler's ``dag``
orientation). Every intermediate is computed once, on first use.

Disconnected graphs: distance features (diameter, radius, path length, eccentricity,
closeness) are computed on the largest connected component (the lowest-numbered one on
ties); betweenness, clustering, spectra, efficiency and modularity on the whole graph.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from topowire import limits
from topowire.topology.dag import longest_path_heights, longest_path_layers, orient_upper
from topowire.topology.topology import Topology

__all__ = ["GraphContext"]


class GraphContext:
    """Lazily computed, shared intermediates of one graph.

    Parameters
    ----------
    n : int
        Number of nodes.
    edges : ndarray of shape (E, 2)
        Edges of the topology (directed or not).
    """

    def __init__(self, n: int, edges: np.ndarray) -> None:
        self.n = int(n)
        self.edges = orient_upper(edges, self.n)  # undirected skeleton as u < v pairs

    @classmethod
    def of(cls, topology: Topology) -> GraphContext:
        return cls(topology.n, topology.edges)

    @property
    def m(self) -> int:
        """Number of undirected edges."""
        return int(self.edges.shape[0])

    @cached_property
    def igraph(self):
        import igraph as ig

        return ig.Graph(n=self.n, edges=self.edges, directed=False)

    @cached_property
    def csr(self) -> sp.csr_matrix:
        u, v = self.edges[:, 0], self.edges[:, 1]
        data = np.ones(2 * self.m, dtype=np.float64)
        return sp.csr_matrix((data, (np.r_[u, v], np.r_[v, u])), shape=(self.n, self.n))

    @cached_property
    def degrees(self) -> np.ndarray:
        return np.bincount(self.edges.ravel(), minlength=self.n).astype(np.float64)

    @cached_property
    def components(self) -> np.ndarray:
        """Component label of every node."""
        return connected_components(self.csr, directed=False)[1]

    @cached_property
    def lcc(self) -> np.ndarray:
        """Node ids of the largest connected component (lowest label on ties)."""
        counts = np.bincount(self.components)
        return np.flatnonzero(self.components == int(np.argmax(counts)))

    @cached_property
    def distances(self) -> np.ndarray:
        """All-pairs hop distances (``inf`` between components), by BFS, a block of rows at a
        time (this matrix and its largest component's are the n x n allocations; checked first)."""
        limits.check_memory(16.0 * self.n * self.n, f"the distance matrix of a graph of {self.n:,} nodes")
        out = np.empty((self.n, self.n))
        block = max(1, 2**20 // max(self.n, 1))
        for lo in range(0, self.n, block):
            out[lo:lo + block] = self.igraph.distances(source=range(lo, min(self.n, lo + block)))
        return out

    @cached_property
    def lcc_distances(self) -> np.ndarray:
        return self.distances[np.ix_(self.lcc, self.lcc)]

    @cached_property
    def eccentricity(self) -> np.ndarray:
        """Eccentricity of the nodes of the largest component, within it."""
        return self.lcc_distances.max(axis=1)

    @cached_property
    def closeness(self) -> np.ndarray:
        """Closeness ``(k-1) / sum(d)`` of the largest component's k nodes (0 when k = 1)."""
        k = len(self.lcc)
        if k < 2:
            return np.zeros(k)
        return (k - 1) / self.lcc_distances.sum(axis=1)

    @cached_property
    def betweenness(self) -> np.ndarray:
        """Node betweenness normalised by ``(n-1)(n-2)/2`` (networkx ``normalized=True``)."""
        b = np.asarray(self.igraph.betweenness(directed=False), dtype=np.float64)
        return b * (2.0 / ((self.n - 1) * (self.n - 2))) if self.n > 2 else b

    @cached_property
    def edge_betweenness(self) -> np.ndarray:
        """Edge betweenness normalised by ``n(n-1)/2`` (networkx ``normalized=True``)."""
        b = np.asarray(self.igraph.edge_betweenness(directed=False), dtype=np.float64)
        return b * (2.0 / (self.n * (self.n - 1))) if self.n > 1 else b

    def _dense(self) -> np.ndarray:
        """The adjacency as a dense matrix, for a full eigendecomposition (which needs about
        three such matrices; checked first)."""
        limits.check_memory(24.0 * self.n * self.n, f"the spectrum of a graph of {self.n:,} nodes")
        return self.csr.toarray()

    @cached_property
    def adjacency_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the adjacency matrix, ascending."""
        return np.linalg.eigvalsh(self._dense())

    @cached_property
    def laplacian_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the combinatorial Laplacian ``D - A``, ascending."""
        lap = np.diag(self.degrees) - self._dense()
        return np.linalg.eigvalsh(lap)

    @cached_property
    def communities(self) -> np.ndarray:
        """Community label of every node: the Clauset–Newman–Moore greedy partition,
        cut at its maximum modularity (igraph ``community_fastgreedy``)."""
        if self.m == 0:
            return np.arange(self.n)
        return np.asarray(self.igraph.community_fastgreedy().as_clustering().membership)

    # -- dag orientation ---------------------------------------------------------------
    @cached_property
    def layers(self) -> np.ndarray:
        """Longest-path layer of every node under the ``u < v`` orientation."""
        return longest_path_layers(self.n, self.edges)

    @cached_property
    def heights(self) -> np.ndarray:
        """Longest path starting at every node under the ``u < v`` orientation."""
        return longest_path_heights(self.n, self.edges)

    @cached_property
    def in_degree(self) -> np.ndarray:
        return np.bincount(self.edges[:, 1], minlength=self.n)

    @cached_property
    def out_degree(self) -> np.ndarray:
        return np.bincount(self.edges[:, 0], minlength=self.n)
