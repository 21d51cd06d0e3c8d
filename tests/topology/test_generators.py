import networkx as nx
import numpy as np
import pytest

from topowire.errors import ParameterError
from topowire.topology import (
    FAMILIES,
    ba_graph,
    complete_graph,
    er_graph,
    generate,
    gnm_graph,
    mlp_graph,
    regular_graph,
    ring_lattice,
    ws_graph,
)


def test_pinned_numpy_generators():
    # ER and G(n, m) are drawn by topowire itself from numpy's PCG64: pinned outputs
    t = er_graph(30, 0.2, seed=7)
    assert (t.id, t.n_edges) == ("a8b2005de655e3f5", 92)
    assert er_graph(12, 0.3, directed=True, seed=3).id == "dd8ae88d45de30db"
    assert gnm_graph(20, 15, seed=5).id == "06c35a2d52d1cbc1"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ws_and_ba_equal_networkx_with_the_same_seed(seed):
    ws = ws_graph(40, 6, 0.25, seed=seed)
    assert nx.utils.graphs_equal(ws.to_networkx(), nx.watts_strogatz_graph(40, 6, 0.25, seed=seed))
    ba = ba_graph(40, 3, seed=seed)
    assert nx.utils.graphs_equal(ba.to_networkx(), nx.barabasi_albert_graph(40, 3, seed=seed))
    cws = ws_graph(40, 4, 0.5, connected=True, seed=seed)
    assert nx.is_connected(cws.to_networkx())


def test_same_seed_same_graph_different_seed_different_graph():
    for fam, params in [("er", {"n": 30, "p": 0.2}), ("gnm", {"n": 30, "m": 40}),
                        ("ws", {"n": 30, "k": 4, "p": 0.5}), ("ba", {"n": 30, "m": 2}),
                        ("regular", {"n": 30, "d": 3})]:
        a, b, c = (generate(fam, seed=s, **params) for s in (11, 11, 12))
        assert a == b and a.id == b.id, fam
        assert a.id != c.id, fam
        assert a.seed == 11 and a.family == fam


def test_regenerate_from_stored_seed_and_params():
    t = ws_graph(25, 4, 0.3, seed=None)
    assert isinstance(t.seed, int)
    assert generate(t.family, seed=t.seed, **t.params).id == t.id


def test_seed_from_a_generator_is_recorded():
    rng = np.random.default_rng(0)
    t = er_graph(10, 0.5, seed=rng)
    assert er_graph(10, 0.5, seed=t.seed).id == t.id


def test_er_edge_count_is_binomial():
    n, p = 200, 0.05
    counts = [er_graph(n, p, seed=s).n_edges for s in range(20)]
    mean, sd = n * (n - 1) / 2 * p, np.sqrt(n * (n - 1) / 2 * p * (1 - p))
    assert abs(np.mean(counts) - mean) < 3 * sd / np.sqrt(20)
    assert er_graph(10, 0.0, seed=0).n_edges == 0
    assert er_graph(10, 1.0, seed=0).n_edges == 45
    assert er_graph(10, 1.0, directed=True, seed=0).n_edges == 90


def test_structural_invariants():
    assert gnm_graph(20, 33, seed=1).n_edges == 33
    assert gnm_graph(5, 20, directed=True, seed=1).n_edges == 20
    assert ws_graph(30, 4, 0.7, seed=1).n_edges == 60          # rewiring keeps n*k/2
    assert ba_graph(30, 3, seed=1).n_edges == 3 * (30 - 3)     # m per node after the first m
    assert set(regular_graph(20, 3, seed=1).degrees()) == {3}
    r = ring_lattice(10, 4)
    assert set(r.degrees()) == {4} and r.n_edges == 20
    assert nx.utils.graphs_equal(r.to_networkx(), nx.watts_strogatz_graph(10, 4, 0.0))
    assert complete_graph(6).n_edges == 15
    m = mlp_graph([3, 4, 2])
    assert m.directed and m.n == 9 and m.n_edges == 3 * 4 + 4 * 2
    assert np.all(m.edges[:, 0] < m.edges[:, 1])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ws_graph(10, 5, 0.1), "k must be even with 2 <= k < n, got k = 5, n = 10"),
        (lambda: ws_graph(10, 10, 0.1), "k must be even with 2 <= k < n, got k = 10, n = 10"),
        (lambda: ws_graph(10, 4, 1.5), "p must be a finite number with 0 <= p <= 1, got p = 1.5"),
        (lambda: ba_graph(5, 7), "1 <= m <= 4 for n = 5, got m = 7"),
        (lambda: ba_graph(5, 0), "1 <= m <= 4 for n = 5, got m = 0"),
        (lambda: er_graph(1, 0.5), "n must be an integer >= 2, got n = 1"),
        (lambda: er_graph(10, -0.1), "p must be a finite number with 0 <= p <= 1"),
        (lambda: er_graph(10, "x"), "p must be a finite number"),
        (lambda: gnm_graph(4, 7), "m must be an integer with 0 <= m <= 6 for n = 4 \\(undirected\\), got m = 7"),
        (lambda: regular_graph(5, 3), "n \\* d must be even"),
        (lambda: regular_graph(5, 5), "d must be an integer with 0 <= d <= 4 for n = 5, got d = 5"),
        (lambda: mlp_graph([3]), "at least two layer widths"),
        (lambda: mlp_graph([3, 0]), "sizes\\[i\\] must be an integer >= 1, got sizes\\[i\\] = 0"),
        (lambda: ring_lattice(4, 3), "k must be even"),
        (lambda: er_graph(2.5, 0.1), "n must be an integer"),
        (lambda: er_graph(10, 0.1, seed=-3), "seed must be an integer >= 0, got seed = -3"),
        (lambda: generate("lattice", n=4), "unknown family 'lattice'"),
        (lambda: generate("ws", n=10, k=4, q=0.1), "unknown parameter\\(s\\) q for family 'ws'"),
        (lambda: generate("ws", n=10, k=4), "needs parameter\\(s\\) p"),
    ],
)
def test_impossible_parameters(call, match):
    with pytest.raises(ParameterError, match=match):
        call()


def test_connected_ws_gives_up_clearly():
    with pytest.raises(ParameterError, match="no connected Watts-Strogatz graph in 2 tries"):
        ws_graph(200, 2, 1.0, connected=True, tries=2, seed=0)


def test_families_are_documented():
    for name, fn in FAMILIES.items():
        assert fn.__doc__ and "Parameters" in fn.__doc__, name


def test_a_wrong_type_is_a_type_error_and_a_parameter_error():
    with pytest.raises(TypeError, match="n must be an integer >= 2, got n = 2.5"):
        er_graph(2.5, 0.1)
    with pytest.raises(ParameterError):
        er_graph(10, "x")


# -- WS-flex (graph2nn) ------------------------------------------------------------------
from topowire.topology.generators import _even_lattice, wsflex_graph  # noqa: E402


def test_the_even_lattice_has_its_edges_with_degrees_at_most_one_apart():
    for n in range(3, 40):
        for n_edges in range(n, n * (n - 1) // 2 + 1, max(1, n // 3)):
            edges = _even_lattice(n, n_edges)
            degree = np.bincount(np.array(edges).ravel(), minlength=n)
            assert len(set(edges)) == n_edges and all(u < v for u, v in edges), (n, n_edges)
            assert degree.max() - degree.min() <= 1, (n, n_edges, degree)


def test_wsflex_has_round_kn_over_2_edges_and_is_seeded():
    for n, k in ((32, 2.0), (32, 3.3), (32, 7.25), (10, 3.0), (32, 31.0)):
        for p in (0.0, 0.4, 1.0):
            g = wsflex_graph(n, k, p, seed=5)
            assert g.n_edges == round(k * n / 2) and nx.is_connected(g.to_networkx()), (n, k, p)
            assert g.edges.tolist() == wsflex_graph(n, k, p, seed=5).edges.tolist()
    assert wsflex_graph(32, 5.0, 0.5, seed=1).edges.tolist() != wsflex_graph(32, 5.0, 0.5, seed=2).edges.tolist()


def test_wsflex_of_even_integer_degree_unrewired_is_the_ring_lattice():
    lattice = wsflex_graph(20, 4.0, 0.0, seed=0)
    assert lattice.edges.tolist() == ring_lattice(20, 4).edges.tolist()
    # rewiring shortens paths and lowers clustering, as in Watts-Strogatz
    rewired = [wsflex_graph(20, 4.0, 1.0, seed=s).to_networkx() for s in range(5)]
    g0 = lattice.to_networkx()
    assert max(nx.average_clustering(g) for g in rewired) < nx.average_clustering(g0)
    assert max(nx.average_shortest_path_length(g) for g in rewired) < nx.average_shortest_path_length(g0)


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 32, "k": 1.5, "p": 0.1}, "k must be"),
    ({"n": 8, "k": 7.5, "p": 0.1}, "k must be"),
    ({"n": 32, "k": 4.0, "p": 1.5}, "p must be"),
])
def test_wsflex_refuses_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        wsflex_graph(**kwargs)
