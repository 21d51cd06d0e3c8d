import numpy as np
import pytest

from topowire.errors import FileFormatError, ParameterError
from topowire.topology import load_recipe, parse_recipe, sample_population
from topowire.topology.recipe import ParamSpec, evaluate_expression


def _recipe(**fam):
    return parse_recipe({"family": [{"kind": "ws", "count": 40, **fam}]})


def test_spec_kinds():
    assert ParamSpec.parse("n", [10, 50]) == ParamSpec("int-range", (10, 50))
    assert ParamSpec.parse("p", [0, 1.0]) == ParamSpec("float-range", (0.0, 1.0))
    assert ParamSpec.parse("k", {"choices": [2, 4]}) == ParamSpec("choice", (2, 4))
    assert ParamSpec.parse("k", "n//5") == ParamSpec("expr", "n//5")
    assert ParamSpec.parse("p", 0.5) == ParamSpec("fixed", 0.5)
    assert ParamSpec.parse("sizes", [4, 8, 2]) == ParamSpec("fixed", (4, 8, 2))


def test_sampled_values_respect_their_specs():
    pop = sample_population(_recipe(n=[10, 50], k="2*(n//10)", p=[0.0, 1.0]), seed=3)
    ns = [t.params["n"] for t in pop]
    assert min(ns) >= 10 and max(ns) <= 50 and len(set(ns)) > 10
    for t in pop:
        assert t.params["k"] == 2 * (t.params["n"] // 10)
        assert 0.0 <= t.params["p"] <= 1.0
    ks = {t.params["k"] for t in sample_population(_recipe(n=30, k={"choices": [2, 4, 6]}, p=0.1), seed=0)}
    assert ks == {2, 4, 6}


@pytest.mark.parametrize(
    "text, env, value",
    [("n//5", {"n": 27}, 5), ("2*(n//10)", {"n": 29}, 4), ("8 / (n - 1)", {"n": 9}, 1.0),
     ("max(1, n//10)", {"n": 5}, 1), ("n*k//2", {"n": 10, "k": 4}, 20), ("-n + 2**3", {"n": 3}, 5)],
)
def test_expressions(text, env, value):
    out = evaluate_expression(text, env)
    assert out == value and type(out) is type(value)


@pytest.mark.parametrize(
    "text, match",
    [("__import__('os')", "uses Constant|only numbers"), ("n.bit_length()", "uses (Call|Attribute)"),
     ("[n]", "uses List"), ("lambda: 1", "uses Lambda"), ("open('x')", "uses Call|uses Constant"),
     ("n if n else 1", "uses IfExp"), ("n +", "cannot parse")],
)
def test_expressions_are_parsed_never_executed(text, match):
    with pytest.raises(ParameterError, match=match):
        evaluate_expression(text, {"n": 3})


def test_expression_errors_name_the_value():
    with pytest.raises(ParameterError, match="names 'q'"):
        evaluate_expression("q + 1", {"n": 3})
    with pytest.raises(ParameterError, match="failed"):
        evaluate_expression("1 // (n - 3)", {"n": 3})


@pytest.mark.parametrize(
    "data, match",
    [
        ({"family": [{"kind": "lattice", "n": 4}]}, "unknown kind 'lattice'"),
        ({"family": [{"kind": "ws", "n": 4, "k": 2, "p": 0.1, "q": 1}]}, "unknown key\\(s\\) q"),
        ({"family": [{"kind": "ws", "n": 4, "k": 2}]}, "missing parameter\\(s\\) p"),
        ({"family": [{"kind": "ws", "count": 0, "n": 4, "k": 2, "p": 0.1}]}, "count must be an integer >= 1"),
        ({"family": [{"kind": "ws", "n": [50, 10], "k": 2, "p": 0.1}]}, "lo > hi"),
        ({"family": [{"kind": "ws", "n": [1, 2, 3], "k": 2, "p": 0.1}]}, "a range is \\[lo, hi\\]"),
        ({"family": [{"kind": "ws", "n": {"pick": [1]}, "k": 2, "p": 0.1}]}, "choices"),
        ({"family": []}, "at least one \\[\\[family\\]\\]"),
        ({"families": []}, "unknown recipe section"),
        ({"population": {"seed": -1}, "family": [{"kind": "complete", "n": 3}]}, "seed must be an integer >= 0"),
        ({"population": {"colour": 1}, "family": [{"kind": "complete", "n": 3}]}, "unknown key\\(s\\) in \\[population\\]"),
    ],
)
def test_bad_recipes(data, match):
    with pytest.raises(ParameterError, match=match):
        parse_recipe(data)


def test_impossible_sampled_parameters_name_the_family():
    with pytest.raises(ParameterError, match=r"family 1 \(ws\) with .*k must be even"):
        sample_population(_recipe(n=20, k=3, p=0.1), seed=0)


def test_round_trip_through_dict():
    r = _recipe(n=[10, 50], k={"choices": [2, 4]}, p=[0.0, 1.0], connected=True)
    assert parse_recipe(r.to_dict()) == r


def test_shipped_recipes(tmp_path):
    root = __import__("pathlib").Path(__file__).parents[2] / "graphs"
    quick = load_recipe(root / "quick.toml")
    assert [f.kind for f in quick.families] == ["er", "ws", "ba"] and quick.count == 75
    darji = load_recipe(root / "darji2021.toml")
    pop = sample_population(darji)
    assert len(pop) == 300
    for t in pop:
        assert 10 <= t.n <= 50
        if t.family == "ba":
            assert t.params["m"] == t.n // 10
        if t.family == "ws":
            assert t.params["k"] == 2 * (t.n // 10) and t.params["p"] == 1.0
    large = load_recipe(root / "large.toml")
    assert large.count >= 300


def test_recipe_files(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")
    (tmp_path / "empty.toml").write_text("  \n")
    with pytest.raises(FileFormatError, match="is empty"):
        load_recipe(tmp_path / "empty.toml")
    (tmp_path / "bad.toml").write_text("[[family]\nkind = 'ws'\n")
    with pytest.raises(FileFormatError, match="not valid TOML"):
        load_recipe(tmp_path / "bad.toml")


def test_child_seeds_make_graphs_independent_of_count():
    # graph i is drawn from child i of the root SeedSequence: changing a later count leaves
    # earlier graphs alone
    a = sample_population(_recipe(n=20, k=4, p=0.5), seed=1)
    b = parse_recipe({"family": [{"kind": "ws", "count": 10, "n": 20, "k": 4, "p": 0.5}]})
    assert sample_population(b, seed=1).ids[:10] != [] and len(a) == 40
    assert np.all([t.n == 20 for t in a])


def test_a_population_of_fixed_size_sets_each_family_edge_parameter():
    recipe = parse_recipe({"population": {"n": 16, "edges": 40}, "family": [
        {"kind": "gnm", "count": 3}, {"kind": "wsflex", "count": 3, "p": [0.0, 1.0]}, {"kind": "regular", "count": 3}]})
    pop = sample_population(recipe, seed=0)
    assert {t.n for t in pop} == {16} and {t.n_edges for t in pop} == {40}
    assert {t.family for t in pop} == {"gnm", "wsflex", "regular"}


@pytest.mark.parametrize("head, fam, match", [
    ({"n": 16, "edges": 40}, {"kind": "ba", "m": 2}, "cannot hold the edge count fixed"),
    ({"edges": 40}, {"kind": "gnm"}, "needs n = "),
    ({"n": 16, "edges": 40}, {"kind": "gnm", "n": 20}, "but \\[population\\] holds n = 16"),
    ({"n": 16, "edges": 40}, {"kind": "wsflex", "k": 4.0}, "k is set by \\[population\\] edges"),
    ({"n": 16, "edges": 500}, {"kind": "gnm"}, "edges must be"),
    ({"n": 15, "edges": 40}, {"kind": "regular"}, "is no regular graph"),
])
def test_a_fixed_size_the_families_cannot_keep_is_refused(head, fam, match):
    with pytest.raises(ParameterError, match=match):
        parse_recipe({"population": head, "family": [{"count": 2, **fam}]})


def test_the_graph2nn_recipe_spans_clustering_and_path_length_at_one_size():
    from pathlib import Path

    from topowire.features import feature_ranges

    pop = sample_population(load_recipe(Path(__file__).parents[2] / "graphs" / "graph2nn.toml"))
    assert len(pop) == 56 and {t.n for t in pop} == {64}  # 55 cells of the (C, L) grid and the complete graph
    assert min(t.density for t in pop) >= 8 / 63 - 1e-9  # graph2nn's density floor: mean degree >= 8
    ranges = feature_ranges(pop)
    assert ranges["avg_clustering min"].min() < 0.15 and ranges["avg_clustering max"].max() > 0.6
    assert ranges["avg_path_length min"].min() == 1.0 and ranges["avg_path_length max"].max() > 2.5


def _candidates():
    return parse_recipe({"population": {"seed": 3}, "family": [
        {"kind": "wsflex", "count": 80, "n": 20, "k": [2.0, 19.0], "p": [0.0, 1.0]}]})


def test_the_plane_is_the_feature_registrys_clustering_and_path_length():
    from topowire.features import feature_table
    from topowire.topology import er_graph
    from topowire.topology.plane import clustering_and_path_length

    graphs = [*sample_population(_candidates())][:20] + [er_graph(30, 0.05, seed=1)]  # one with components
    table = feature_table(graphs, ["avg_clustering", "avg_path_length"])
    np.testing.assert_allclose(clustering_and_path_length(graphs), table.to_numpy(), rtol=1e-12)


def test_stratified_selection_keeps_the_first_graph_of_every_occupied_cell():
    from topowire.topology.plane import bin_index, clustering_and_path_length

    drawn = list(sample_population(_candidates()))
    data = _candidates().to_dict()
    data["family"][0]["stratify"] = {"avg_clustering": 4, "avg_path_length": 3}
    kept = list(sample_population(parse_recipe(data)))
    cells = bin_index(clustering_and_path_length(drawn), [4, 3])
    occupied = sorted(set(cells.tolist()))
    assert len(kept) == len(occupied) < len(drawn)
    firsts = [drawn[int(np.flatnonzero(cells == c)[0])].id for c in occupied]
    assert sorted(t.id for t in kept) == sorted(firsts)
    assert [t.id for t in kept] == [t.id for t in drawn if t.id in set(firsts)]  # in draw order
    assert parse_recipe(data).to_dict()["family"][0]["stratify"] == {"avg_clustering": 4, "avg_path_length": 3}
    assert [t.id for t in sample_population(parse_recipe(data))] == [t.id for t in kept]  # deterministic


@pytest.mark.parametrize("stratify, match", [
    ({"density": 4}, "unknown feature.*density: expected avg_clustering, avg_path_length"),
    ({"avg_clustering": 0}, "stratify.avg_clustering must be an integer with 1 <= "),
    ({}, "stratify must be a table of features and bin counts"),
    ([4], "stratify must be a table"),
])
def test_a_bad_stratify_is_refused(stratify, match):
    data = _candidates().to_dict()
    data["family"][0]["stratify"] = stratify
    with pytest.raises(ParameterError, match=match):
        parse_recipe(data)


def test_a_recipe_says_its_design_in_words():
    from topowire.study import default_recipe

    assert default_recipe().design() == "75 graphs (er 25, ws 25, ba 25) of 8-24 nodes"
    from pathlib import Path

    assert load_recipe(Path(__file__).parents[2] / "graphs" / "graph2nn.toml").design() == \
        "up to 1001 graphs (wsflex 1000 candidates, complete 1) of 64 nodes"
    mixed = parse_recipe({"family": [{"kind": "er", "count": 2, "n": {"choices": [5, 30]}, "p": 0.3},
                                     {"kind": "mlp", "count": 1, "sizes": [2, 3]}]})
    assert mixed.design() == "3 graphs (er 2, mlp 1) of 5-30 nodes"
