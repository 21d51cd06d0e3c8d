import networkx as nx
import numpy as np
import pytest

from topowire.errors import ParameterError
from topowire.topology import Topology, er_graph


def test_pinned_content_id():
    # the id is a content hash: pinned so that stored populations stay valid across releases
    assert Topology(4, [[0, 1], [1, 2], [2, 3]]).id == "a6cec4f252a7a198"


def test_id_ignores_edge_order_direction_and_metadata():
    a = Topology(5, [[3, 4], [0, 1], [2, 1]], family="x", seed=1)
    b = Topology(5, [[1, 0], [1, 2], [4, 3]], family="y", seed=2)
    assert a.id == b.id
    assert a != b  # metadata differs
    assert a.edges.tolist() == [[0, 1], [1, 2], [3, 4]]


def test_direction_changes_the_id():
    und = Topology(3, [[0, 1], [1, 2]])
    di = Topology(3, [[0, 1], [1, 2]], directed=True)
    rev = Topology(3, [[1, 0], [2, 1]], directed=True)
    assert len({und.id, di.id, rev.id}) == 3


def test_topology_is_immutable():
    t = Topology(3, [[0, 1]])
    with pytest.raises(ValueError):
        t.edges[0, 0] = 2
    with pytest.raises(AttributeError):
        t.n = 4


@pytest.mark.parametrize(
    "n, edges, match",
    [
        (3, [[0, 3]], "node id 3 is out of range"),
        (3, [[-1, 0]], "node id -1 is out of range"),
        (3, [[0, 0]], "self-loop at node 0"),
        (3, [[0, 1], [1, 0]], "repeated edge"),
        (3, [[0.5, 1]], "node ids must be integers"),
        (3, [[0, 1, 2]], r"shape \(E, 2\)"),
        (0, [], "n must be an integer >= 1, got n = 0"),
        (2.5, [], "n must be an integer"),
    ],
)
def test_bad_topologies(n, edges, match):
    with pytest.raises(ParameterError, match=match):
        Topology(n, edges)


def test_directed_reciprocal_pair_is_two_edges():
    t = Topology(2, [[0, 1], [1, 0]], directed=True)
    assert t.n_edges == 2
    assert t.density == 1.0


def test_networkx_and_igraph_round_trip():
    g = nx.gnp_random_graph(25, 0.2, seed=3)
    t = Topology.from_networkx(g)
    assert nx.utils.graphs_equal(t.to_networkx(), g)
    h = t.to_igraph()
    assert h.vcount() == 25 and h.ecount() == g.number_of_edges()
    assert Topology.from_igraph(h).id == t.id


def test_from_networkx_relabels_non_integer_labels_in_order():
    g = nx.Graph([("a", "b"), ("b", "c")])
    t = Topology.from_networkx(g)
    assert t.edges.tolist() == [[0, 1], [1, 2]]
    # integer-like string labels forming 0..n-1 are kept as their values
    g2 = nx.Graph([("2", "0"), ("0", "1")])
    assert Topology.from_networkx(g2).edges.tolist() == [[0, 1], [0, 2]]


def test_dict_round_trip_and_tamper_detection():
    t = Topology(4, [[0, 1], [2, 3]], family="custom", params={"a": 1}, seed=9)
    d = t.to_dict()
    assert Topology.from_dict(d) == t
    d["edges"] = [[0, 1], [1, 3]]
    with pytest.raises(ParameterError, match="does not match the graph's content hash"):
        Topology.from_dict(d)


@pytest.mark.parametrize("key, value, match", [
    ("directed", "yes", r"directed must be true or false, got directed = 'yes'"),
    ("directed", 1, r"directed must be true or false, got directed = 1"),
    ("n", 2.5, r"n must be an integer >= 1, got n = 2.5")])
def test_a_bad_record_names_the_field(key, value, match):
    record = {**er_graph(6, 0.5, seed=1).to_dict(), key: value}
    record.pop("id")
    with pytest.raises(ParameterError, match=match):
        Topology.from_dict(record)


def test_adjacency_and_degrees():
    t = Topology(3, [[0, 1], [0, 2]])
    np.testing.assert_array_equal(t.adjacency(), [[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(t.degrees(), [2, 1, 1])
    d = Topology(3, [[0, 1]], directed=True)
    np.testing.assert_array_equal(d.adjacency(), [[0, 1, 0], [0, 0, 0], [0, 0, 0]])
