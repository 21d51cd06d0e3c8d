"""The built-in features (registered on import). ``var`` is the population variance
(ddof = 0) and ``std`` its square root. A feature that is undefined for a graph (for
example assortativity of a regular graph) is NaN, never an exception."""

from __future__ import annotations

import numpy as np

from topowire.features.context import GraphContext
from topowire.features.registry import register

NAN = float("nan")


def _stat(values: np.ndarray, how: str) -> float:
    if values.size == 0:
        return NAN
    return float({"mean": np.mean, "var": np.var, "std": np.std, "max": np.max,
                  "min": np.min}[how](values))


def _stats(prefix: str, group: str, what: str, attr, hows=("mean", "var", "std", "max")) -> None:
    """Register ``<prefix>_<stat>`` features over a per-node (or per-edge) array."""
    for how in hows:
        register(f"{prefix}_{how}", group, f"{how} of {what}")(
            lambda ctx, how=how: _stat(attr(ctx), how)
        )


# -- size ----------------------------------------------------------------------------
register("n_nodes", "size", "number of nodes")(lambda ctx: float(ctx.n))
register("n_edges", "size", "number of undirected edges")(lambda ctx: float(ctx.m))
register("density", "size", "edges / (n(n-1)/2)")(
    lambda ctx: 2.0 * ctx.m / (ctx.n * (ctx.n - 1)) if ctx.n > 1 else NAN
)

# -- degree --------------------------------------------------------------------------
_stats("degree", "degree", "node degree", lambda ctx: ctx.degrees,
       hows=("mean", "var", "std", "max", "min"))
_stats("degree_centrality", "degree", "degree centrality, degree / (n-1)",
       lambda ctx: ctx.degrees / (ctx.n - 1) if ctx.n > 1 else np.array([]),
       hows=("mean", "var", "std"))


@register("degree_assortativity", "degree",
          "Pearson correlation of the degrees at either end of an edge (NaN if all degrees equal)")
def _assortativity(ctx: GraphContext) -> float:
    if ctx.m == 0:
        return NAN
    du, dv = ctx.degrees[ctx.edges[:, 0]], ctx.degrees[ctx.edges[:, 1]]
    x, y = np.r_[du, dv], np.r_[dv, du]
    sx = x.std()
    return float(np.mean((x - x.mean()) * (y - y.mean())) / sx**2) if sx > 0 else NAN


# -- components ----------------------------------------------------------------------
register("n_components", "components", "number of connected components")(
    lambda ctx: float(ctx.components.max() + 1)
)
register("lcc_fraction", "components", "fraction of nodes in the largest connected component")(
    lambda ctx: len(ctx.lcc) / ctx.n
)
register("isolated_fraction", "components", "fraction of nodes of degree 0")(
    lambda ctx: float(np.mean(ctx.degrees == 0))
)

# -- distance (largest component) ----------------------------------------------------
register("diameter", "distance", "largest eccentricity (largest component)")(
    lambda ctx: float(ctx.eccentricity.max())
)
register("radius", "distance", "smallest eccentricity (largest component)")(
    lambda ctx: float(ctx.eccentricity.min())
)


@register("avg_path_length", "distance",
          "mean hop distance over ordered node pairs of the largest component (0 if one node)")
def _avg_path(ctx: GraphContext) -> float:
    k = len(ctx.lcc)
    return float(ctx.lcc_distances.sum() / (k * (k - 1))) if k > 1 else 0.0


@register("global_efficiency", "distance",
          "mean of 1/d over ordered node pairs of the whole graph (0 for unreachable pairs)")
def _efficiency(ctx: GraphContext) -> float:
    if ctx.n < 2:
        return 0.0
    d = ctx.distances
    with np.errstate(divide="ignore"):
        inv = np.where(np.isfinite(d) & (d > 0), 1.0 / d, 0.0)
    return float(inv.sum() / (ctx.n * (ctx.n - 1)))


_stats("eccentricity", "distance", "eccentricity (largest component)",
       lambda ctx: ctx.eccentricity, hows=("mean", "var", "std"))

# -- centrality ----------------------------------------------------------------------
_stats("closeness", "centrality", "closeness centrality (k-1)/sum(d) within the largest component",
       lambda ctx: ctx.closeness)
_stats("betweenness", "centrality", "node betweenness, normalised by (n-1)(n-2)/2",
       lambda ctx: ctx.betweenness)
_stats("edge_betweenness", "centrality", "edge betweenness, normalised by n(n-1)/2",
       lambda ctx: ctx.edge_betweenness)


# -- clustering ----------------------------------------------------------------------
@register("transitivity", "clustering",
          "global clustering: 3 x triangles / connected triples (0 if no triples)")
def _transitivity(ctx: GraphContext) -> float:
    t = ctx.igraph.transitivity_undirected()
    return 0.0 if np.isnan(t) else float(t)


register("avg_clustering", "clustering",
         "mean local clustering coefficient, nodes of degree < 2 counting 0")(
    lambda ctx: float(ctx.igraph.transitivity_avglocal_undirected(mode="zero")) if ctx.n else NAN
)

# -- spectral ------------------------------------------------------------------------
register("spectral_radius", "spectral", "largest eigenvalue of the adjacency matrix")(
    lambda ctx: float(np.max(np.abs(ctx.adjacency_eigenvalues)))
)
register("spectral_gap", "spectral",
         "difference of the two largest adjacency eigenvalues")(
    lambda ctx: float(ctx.adjacency_eigenvalues[-1] - ctx.adjacency_eigenvalues[-2]) if ctx.n > 1 else NAN
)
register("algebraic_connectivity", "spectral",
         "second-smallest Laplacian eigenvalue (0 for a disconnected graph)")(
    lambda ctx: float(max(ctx.laplacian_eigenvalues[1], 0.0)) if ctx.n > 1 else NAN
)


# -- community -----------------------------------------------------------------------
@register("modularity", "community",
          "Newman modularity Q of the greedy (Clauset-Newman-Moore) partition; NaN without edges")
def _modularity(ctx: GraphContext) -> float:
    if ctx.m == 0:
        return NAN
    return float(ctx.igraph.modularity(ctx.communities.tolist()))


register("n_communities", "community", "number of communities of the greedy partition")(
    lambda ctx: float(ctx.communities.max() + 1)
)

# -- dag (u < v orientation) ---------------------------------------------------------
register("dag_n_layers", "dag", "longest-path layers of the u<v orientation (depth + 1)")(
    lambda ctx: float(ctx.layers.max() + 1)
)
register("dag_n_sources", "dag", "nodes with no incoming edge under u<v (isolated nodes count)")(
    lambda ctx: float(np.sum(ctx.in_degree == 0))
)
register("dag_n_sinks", "dag", "nodes with no outgoing edge under u<v (isolated nodes count)")(
    lambda ctx: float(np.sum(ctx.out_degree == 0))
)
register("dag_layer_width_max", "dag", "largest number of nodes in one layer")(
    lambda ctx: float(np.bincount(ctx.layers).max())
)
register("dag_layer_width_mean", "dag", "mean number of nodes per layer")(
    lambda ctx: ctx.n / float(ctx.layers.max() + 1)
)


@register("dag_skip_fraction", "dag", "fraction of edges that skip at least one layer (NaN without edges)")
def _skip(ctx: GraphContext) -> float:
    if ctx.m == 0:
        return NAN
    span = ctx.layers[ctx.edges[:, 1]] - ctx.layers[ctx.edges[:, 0]]
    return float(np.mean(span > 1))


register("dag_path_fraction", "dag",
         "fraction of nodes on a source-to-sink path of at least one edge (non-isolated nodes)")(
    lambda ctx: float(np.mean(ctx.degrees > 0))
)
register("dag_critical_fraction", "dag", "fraction of nodes on a longest source-to-sink path")(
    lambda ctx: float(np.mean(ctx.layers + ctx.heights == ctx.layers.max()))
)
