import networkx as nx
import numpy as np
import pytest

from topowire.compiler import Arch, Wiring, compile, wire
from topowire.errors import NotADAGError, ParameterError
from topowire.topology import Topology, ba_graph, er_graph, mlp_graph, ws_graph


def _digraph(w):
    g = nx.DiGraph(w.edges.tolist())
    g.add_nodes_from(range(w.n_neurons))
    return g


def test_dag_orientation_is_u_less_than_v():
    t = ws_graph(30, 4, 0.5, seed=0)
    w = wire(t, "dag")
    assert np.all(w.edges[:, 0] < w.edges[:, 1]) and w.n_edges == t.n_edges
    assert w.is_dag and w.depth == nx.dag_longest_path_length(_digraph(w))
    np.testing.assert_array_equal(w.inputs, [v for v in range(30) if _digraph(w).in_degree(v) == 0])
    np.testing.assert_array_equal(w.outputs, [v for v in range(30) if _digraph(w).out_degree(v) == 0])


def test_random_dag_is_acyclic_seeded_and_keeps_the_graph():
    t = ba_graph(40, 3, seed=1)
    a, b, c = wire(t, "random-dag", seed=5), wire(t, "random-dag", seed=5), wire(t, "random-dag", seed=6)
    assert nx.is_directed_acyclic_graph(_digraph(a))
    assert np.array_equal(a.edges, b.edges) and not np.array_equal(a.edges, c.edges)
    assert np.array_equal(np.unique(np.sort(a.edges, 1), axis=0), t.edges)


def test_both_is_symmetric_and_cyclic():
    t = ws_graph(20, 4, 0.2, seed=2)
    w = wire(t, "both", inputs="all", outputs="all")
    m = w.mask()
    assert np.array_equal(m, m.T) and w.n_edges == 2 * t.n_edges and not w.is_dag


def test_as_is_keeps_direction_and_refuses_undirected():
    m = mlp_graph([2, 3, 2])
    w = wire(m, "as-is")
    assert np.array_equal(w.edges, m.edges) and w.depth == 2
    with pytest.raises(ParameterError, match="'as-is' keeps a directed graph"):
        wire(ws_graph(10, 2, 0.1, seed=0), "as-is")


def test_mask_convention():
    w = wire(Topology(3, [[0, 1], [1, 2]], directed=True), "as-is")
    m = w.mask()
    assert m[1, 0] == 1 and m[2, 1] == 1 and m.sum() == 2  # mask[v, u] = 1 iff u -> v


def test_top_k_inputs_by_degree():
    t = ba_graph(30, 2, seed=3)
    w = wire(t, "dag", inputs=4)
    deg = t.degrees()
    assert len(w.inputs) == 4
    assert deg[w.inputs].min() >= np.sort(deg)[-4]


def test_off_path_neurons_are_reported():
    t = ws_graph(30, 4, 0.4, seed=7)
    w = wire(t, "dag", inputs=3)
    g = _digraph(w)
    reach_in = set(w.inputs.tolist()).union(*(nx.descendants(g, int(i)) for i in w.inputs))
    reach_out = set(w.outputs.tolist()).union(*(nx.ancestors(g, int(o)) for o in w.outputs))
    expected = 30 - len(reach_in & reach_out)
    assert w.n_off_path == expected > 0
    assert w.off_path_fraction == pytest.approx(expected / 30)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: wire(ws_graph(10, 2, 0.1, seed=0), "upward"), ParameterError, "unknown orientation 'upward'"),
        (lambda: wire(ws_graph(10, 2, 0.1, seed=0), "both"), ParameterError, "found no source neuron"),
        (lambda: wire(ws_graph(10, 2, 0.1, seed=0), "both", "all", "sinks"), ParameterError, "found no sink"),
        (lambda: wire(ws_graph(10, 2, 0.1, seed=0), "dag", inputs=11), ParameterError, "1 <= k <= n = 10"),
        (lambda: wire(ws_graph(10, 2, 0.1, seed=0), "dag", inputs="middle"), ParameterError, "inputs = 'middle'"),
        (lambda: Wiring(3, np.array([[0, 1]]), np.array([2]), np.array([1])), ParameterError,
         "no path from any input neuron"),
        (lambda: wire(er_graph(5, 0.5, seed=0), "dag", inputs=0), ParameterError, "1 <= k"),
        (lambda: wire("not a topology"), TypeError, "takes a Topology"),
    ],
)
def test_bad_wirings(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_feed_forward_target_refuses_a_cycle_by_name():
    t = Topology(4, [[0, 1], [1, 2], [2, 0], [2, 3]], directed=True)
    with pytest.raises(NotADAGError, match="has the cycle 0 -> 1 -> 2 -> 0"):
        compile(t, "iterative", orientation="as-is", inputs="all", outputs="sinks")
    # an explicit K makes it a (recurrent) iterative map, which is allowed
    net = compile(t, "iterative", orientation="as-is", inputs="all", outputs="sinks", iterations=5)
    assert net.iterations == 5
    # recurrent targets take cycles as they are
    assert compile(t, "gru", orientation="as-is", inputs="all", outputs="all").wiring.n_edges == 4


def test_wiring_round_trips_through_dict():
    w = wire(ba_graph(20, 2, seed=0), "random-dag", inputs=3, seed=1)
    back = Wiring.from_dict(w.to_dict())
    assert np.array_equal(back.edges, w.edges) and np.array_equal(back.layer, w.layer)
    assert np.array_equal(back.inputs, w.inputs) and back.topology_id == w.topology_id


def test_bad_arch():
    with pytest.raises(ParameterError, match="unknown kind 'transformer'"):
        Arch("transformer")
    with pytest.raises(ParameterError, match="d_in must be an integer with 1 <= d_in"):
        Arch("gru", d_in=0)
    with pytest.raises(ParameterError, match="unknown activation"):
        Arch("iterative", activation="gelu2")


def test_an_input_count_given_as_text_is_an_int():
    """``--inputs 3`` on the command line (or "3" in a config file) is the top-3 count."""
    arch = Arch("gru", inputs="3")
    assert arch.inputs == 3 and arch.hash == Arch("gru", inputs=3).hash
    assert Arch("gru", inputs="sources").inputs == "sources"
    w = wire(ws_graph(12, 4, 0.3, seed=1), arch.orientation, arch.inputs, arch.outputs)
    assert len(w.inputs) == 3
    with pytest.raises(ParameterError, match="outputs = 'al': expected 'all' or 'sinks'"):
        wire(ws_graph(12, 4, 0.3, seed=1), "both", "all", "al")
