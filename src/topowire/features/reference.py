"""networkx reference implementations of every built-in feature.

Independent of the igraph engine (they share only the definitions); the tests check the
two agree, and ``bench/bench_features.py`` times them side by side. Slow by design: use
:func:`topowire.features.feature_table` for real work.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from topowire.topology.topology import Topology

__all__ = ["reference_features"]

NAN = float("nan")


def _stats(prefix: str, values, hows=("mean", "var", "std", "max")) -> dict[str, float]:
    v = np.asarray(list(values), dtype=np.float64)
    fns = {"mean": np.mean, "var": np.var, "std": np.std, "max": np.max, "min": np.min}
    return {f"{prefix}_{h}": (float(fns[h](v)) if v.size else NAN) for h in hows}


def reference_features(topology: Topology, partition: list[set[int]] | None = None) -> dict[str, float]:
    """Every built-in feature computed with networkx.

    Parameters
    ----------
    topology : Topology
        The graph.
    partition : list of sets, optional
        The community partition to score for ``modularity`` / ``n_communities``. By
        default networkx's own Clauset–Newman–Moore partition, which can break ties
        differently from igraph's (so only the modularity of the *same* partition is
        expected to agree exactly).
    """
    g = nx.Graph()
    g.add_nodes_from(range(topology.n))
    g.add_edges_from(topology.edges.tolist())
    n, m = g.number_of_nodes(), g.number_of_edges()
    out: dict[str, float] = {"n_nodes": n, "n_edges": m, "density": nx.density(g)}

    deg = [d for _, d in g.degree()]
    out |= _stats("degree", deg, ("mean", "var", "std", "max", "min"))
    out |= _stats("degree_centrality", nx.degree_centrality(g).values(), ("mean", "var", "std"))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["degree_assortativity"] = float(nx.degree_assortativity_coefficient(g)) if m else NAN

    comps = sorted(nx.connected_components(g), key=lambda c: (-len(c), min(c)))
    lcc = g.subgraph(comps[0])
    out |= {"n_components": len(comps), "lcc_fraction": len(comps[0]) / n,
            "isolated_fraction": sum(1 for d in deg if d == 0) / n}

    ecc = nx.eccentricity(lcc)
    out |= {"diameter": nx.diameter(lcc), "radius": nx.radius(lcc),
            "avg_path_length": nx.average_shortest_path_length(lcc),
            "global_efficiency": nx.global_efficiency(g)}
    out |= _stats("eccentricity", ecc.values(), ("mean", "var", "std"))

    out |= _stats("closeness", nx.closeness_centrality(lcc).values())
    out |= _stats("betweenness", nx.betweenness_centrality(g).values())
    out |= _stats("edge_betweenness", nx.edge_betweenness_centrality(g).values())

    out["transitivity"] = nx.transitivity(g)
    out["avg_clustering"] = nx.average_clustering(g)

    eig = np.sort(np.real(nx.adjacency_spectrum(g)))
    out["spectral_radius"] = float(np.max(np.abs(eig)))
    out["spectral_gap"] = float(eig[-1] - eig[-2])
    out["algebraic_connectivity"] = (
        float(nx.algebraic_connectivity(g, tol=1e-12, method="tracemin_lu")) if n > 2 and nx.is_connected(g)
        else float(np.sort(nx.laplacian_spectrum(g))[1]) if nx.is_connected(g) else 0.0
    )

    if partition is None:
        partition = [set(c) for c in nx.community.greedy_modularity_communities(g)] if m else []
    out["modularity"] = float(nx.community.modularity(g, partition)) if m else NAN
    out["n_communities"] = float(len(partition)) if m else float(n)

    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    dag.add_edges_from((min(u, v), max(u, v)) for u, v in g.edges())
    gens = [sorted(x) for x in nx.topological_generations(dag)]
    layer = {v: i for i, gen in enumerate(gens) for v in gen}
    depth = nx.dag_longest_path_length(dag)
    starting = dict.fromkeys(dag, 0)  # longest path starting at v, by reverse topological DP
    for v in reversed(list(nx.topological_sort(dag))):
        starting[v] = max((starting[w] + 1 for w in dag.successors(v)), default=0)
    out |= {
        "dag_n_layers": len(gens),
        "dag_n_sources": sum(1 for v in dag if dag.in_degree(v) == 0),
        "dag_n_sinks": sum(1 for v in dag if dag.out_degree(v) == 0),
        "dag_layer_width_max": max(len(x) for x in gens),
        "dag_layer_width_mean": n / len(gens),
        "dag_skip_fraction": (sum(1 for u, v in dag.edges() if layer[v] - layer[u] > 1) / m) if m else NAN,
        "dag_path_fraction": sum(1 for v in dag if dag.degree(v) > 0) / n,
        "dag_critical_fraction": sum(1 for v in dag if layer[v] + starting[v] == depth) / n,
    }
    return {k: float(v) for k, v in out.items()}
