import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from topowire.errors import ParameterError
from topowire.features import GROUPS, REGISTRY, GraphContext, compute_features, feature_table, list_features
from topowire.features.reference import reference_features
from topowire.topology import (
    Population,
    Topology,
    ba_graph,
    complete_graph,
    er_graph,
    mlp_graph,
    regular_graph,
    ring_lattice,
    ws_graph,
)


def _population(family: str, count: int = 50) -> list[Topology]:
    rng = np.random.default_rng({"er": 1, "ws": 2, "ba": 3}[family])
    out = []
    for _ in range(count):
        n = int(rng.integers(8, 41))
        if family == "er":  # sparse enough that many graphs are disconnected
            out.append(er_graph(n, float(rng.uniform(0.03, 0.3)), seed=rng))
        elif family == "ws":
            out.append(ws_graph(n, int(rng.choice([2, 4, 6])), float(rng.uniform(0, 1)), seed=rng))
        else:
            out.append(ba_graph(n, int(rng.integers(1, 4)), seed=rng))
    return out


def _partition(t: Topology) -> list[set[int]]:
    labels = GraphContext.of(t).communities
    return [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]


def _assert_agree(t: Topology) -> None:
    ours = compute_features(t)
    ref = reference_features(t, partition=_partition(t))
    assert list(ours) == list(REGISTRY)
    assert set(ours) == set(ref)
    for name in ours:
        a, b = ours[name], ref[name]
        if math.isnan(b):
            assert math.isnan(a), (t, name, a, b)
        else:
            assert a == pytest.approx(b, rel=0, abs=1e-9), (t, name, a, b)


@pytest.mark.parametrize("family", ["er", "ws", "ba"])
def test_every_feature_agrees_with_networkx(family):
    pop = _population(family)
    if family == "er":
        assert any(not nx.is_connected(t.to_networkx()) for t in pop)  # the LCC policy is exercised
    for t in pop:
        _assert_agree(t)


@pytest.mark.parametrize(
    "topology",
    [
        ring_lattice(12, 4),               # regular: assortativity undefined (NaN)
        regular_graph(10, 3, seed=0),
        complete_graph(6),
        mlp_graph([3, 4, 2]),              # a directed DAG
        er_graph(20, 0.1, directed=True, seed=5),  # reciprocal pairs merge in the skeleton
        Topology(5, np.zeros((0, 2), dtype=int)),  # no edges at all
        Topology(4, [[0, 1]]),             # isolated nodes
        Topology(2, [[0, 1]]),
    ],
    ids=lambda t: f"{t.family}-{t.n}-{t.n_edges}",
)
def test_edge_cases_agree_with_networkx(topology):
    _assert_agree(topology)


def test_modularity_algorithm_matches_networkx_up_to_tie_breaking():
    # igraph and networkx both run Clauset-Newman-Moore; they may break ties differently,
    # so only the modularity of the *same* partition agrees exactly (checked above)
    for t in _population("ws", 10):
        ours = compute_features(t, ["modularity"])["modularity"]
        theirs = reference_features(t)["modularity"]
        assert abs(ours - theirs) < 0.05


def test_pinned_values():
    f = compute_features(ws_graph(20, 4, 0.0, seed=0))  # the ring lattice C(20; 1, 2)
    assert f["diameter"] == 5 and f["radius"] == 5
    assert f["transitivity"] == pytest.approx(0.5)
    assert f["spectral_radius"] == pytest.approx(4.0)
    assert f["dag_n_layers"] == 20  # the u<v orientation holds the path 0 -> 1 -> ... -> 19
    f = compute_features(mlp_graph([2, 3, 2]))
    assert (f["dag_n_layers"], f["dag_n_sources"], f["dag_n_sinks"]) == (3, 2, 2)
    assert f["dag_skip_fraction"] == 0.0 and f["dag_critical_fraction"] == 1.0


def test_registry_is_documented_and_large_enough():
    table = list_features()
    assert len(table) >= 30
    assert table["name"].is_unique
    assert set(table["group"]) == set(GROUPS) | {"params", "flops", "dynamics", "init"}
    assert set(table.loc[table["group"] == "dynamics", "needs"]) == {"arch, task"}
    assert all(isinstance(d, str) and len(d) > 10 for d in table["doc"])
    thesis = ["n_nodes", "n_edges", "diameter", "density", "avg_path_length", "dag_n_layers",
              "dag_n_sources", "dag_n_sinks"] + [f"{p}_{s}" for p in ("eccentricity", "degree_centrality",
                                                                       "closeness", "betweenness",
                                                                       "edge_betweenness")
                                                  for s in ("mean", "var", "std")]
    assert set(thesis) <= set(table["name"])


def test_feature_table_shape_order_and_groups():
    pop = Population(tuple(_population("ba", 5)))
    df = feature_table(pop, ["n_nodes", "centrality"])
    assert list(df.index) == pop.ids and df.index.name == "id"
    assert df.columns[0] == "n_nodes" and len(df.columns) == 13
    assert (df.dtypes == np.float64).all()
    assert df["n_nodes"].tolist() == [t.n for t in pop]


def test_parallel_table_equals_serial():
    pop = _population("er", 40) + _population("ws", 40) + _population("ba", 40)
    serial = feature_table(pop, n_jobs=1)
    parallel = feature_table(pop, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_unknown_feature_is_refused():
    with pytest.raises(ParameterError, match="unknown feature 'girth'"):
        feature_table([complete_graph(3)], ["girth"])
    with pytest.raises(ParameterError, match="n_jobs must be an integer"):
        feature_table([complete_graph(3)], n_jobs="all")


def test_model_feature_groups_take_the_arch_and_task_they_need():
    from topowire.compiler import Arch, compile
    from topowire.data import make_task
    from topowire.dynamics.features import DYNAMICS_FEATURES, dynamics_table
    from topowire.errors import ParameterError
    from topowire.seeds import init_seed
    from topowire.topology import er_graph

    pop = [er_graph(10, 0.3, seed=s) for s in range(3)]
    task = make_task("reber", n_train=32, n_test=8, seed=0)
    arch = Arch("gru", d_in=task.d_in, d_out=task.d_out)
    df = feature_table(pop + pop[:1], ["n_edges", "params", "dynamics"], arch=arch, task=task, seed=5)
    assert list(df.columns) == ["n_edges", "params", *DYNAMICS_FEATURES] and len(df) == 3  # the repeat is one row
    for t in pop:  # params is the count of the model the trainer builds; dynamics its init dynamics
        assert df.iloc[pop.index(t)]["params"] == compile(t, arch, seed=init_seed(5, t.id, 0)).parameter_counts()["total"]
    pd.testing.assert_frame_equal(df.iloc[:3][list(DYNAMICS_FEATURES)], dynamics_table(pop, arch, task, seed=5))
    with pytest.raises(ParameterError, match="params features are measured on the compiled model: they need an arch"):
        feature_table(pop, ["params"])
    with pytest.raises(ParameterError, match="need an arch and a task"):
        feature_table(pop, ["dyn_spectral_norm"], arch=arch)


def test_a_topology_given_twice_is_one_row(tmp_path, capsys):
    from topowire.cli import main
    from topowire.compiler import Arch
    from topowire.topology import write_population

    g, h = er_graph(10, 0.3, seed=1), er_graph(10, 0.3, seed=2)
    table = feature_table([g, h, g], ["density", "params"], arch=Arch("gru"))
    assert list(table.index) == [g.id, h.id]
    write_population(Population((g, h, g)), tmp_path / "p.jsonl")
    assert main(["features", str(tmp_path / "p.jsonl"), "-o", str(tmp_path / "f.csv"), "-j", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "of 2 topologies" in out and "1 repeated topologies counted once" in out
