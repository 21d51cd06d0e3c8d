import networkx as nx
import numpy as np
import pytest

from topowire.errors import NotADAGError
from topowire.topology import ba_graph, er_graph
from topowire.topology.dag import find_cycle, longest_path_heights, longest_path_layers, orient_upper


@pytest.mark.parametrize("seed", range(5))
def test_layers_equal_networkx_topological_generations(seed):
    t = er_graph(40, 0.1, directed=True, seed=seed)
    e = t.edges[t.edges[:, 0] < t.edges[:, 1]]  # keep a DAG
    g = nx.DiGraph(e.tolist())
    g.add_nodes_from(range(40))
    layers = longest_path_layers(40, e)
    for i, gen in enumerate(nx.topological_generations(g)):
        assert set(np.flatnonzero(layers == i)) == set(gen)
    heights = longest_path_heights(40, e)
    assert heights.max() == layers.max() == nx.dag_longest_path_length(g)


def test_orient_upper_is_acyclic_and_deduplicated():
    e = orient_upper(np.array([[3, 1], [1, 3], [0, 2]]), 4)
    assert e.tolist() == [[0, 2], [1, 3]]
    t = ba_graph(30, 2, seed=0)
    assert find_cycle(30, orient_upper(t.edges, 30)) == []


def test_cycle_is_named():
    with pytest.raises(NotADAGError, match="has the cycle 0 -> 1 -> 2 -> 0"):
        longest_path_layers(4, np.array([[0, 1], [1, 2], [2, 0], [2, 3]]))


def test_isolated_nodes_are_layer_zero():
    np.testing.assert_array_equal(longest_path_layers(3, np.zeros((0, 2), dtype=np.int64)), [0, 0, 0])
