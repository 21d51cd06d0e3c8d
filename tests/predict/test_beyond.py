"""Wiring beyond size: size held fixed by design, the graph features on what size leaves, the
design's power, and the line that says a design cannot detect a wiring effect."""

import re

import numpy as np
import pandas as pd
import pytest

from topowire.compiler import Arch, wire
from topowire.compiler.targets.relational import MATCH_TOLERANCE
from topowire.features import feature_table
from topowire.predict import cross_validate, size_columns, size_design
from topowire.predict.beyond import SIZE_TOLERANCE, BeyondSize, plant
from topowire.topology import complete_graph
from topowire.topology.generators import wsflex_graph


def _width_matched_features() -> pd.DataFrame:
    """33 graphs of 16 nodes (32 WS-flex across degree and rewiring, and the complete graph)
    with the parameters of relational MLPs matched to the dense one's budget."""
    rng = np.random.default_rng(0)
    graphs = [wsflex_graph(16, float(k), float(p), seed=i)
              for i, (k, p) in enumerate(zip(rng.uniform(2, 14, 32), rng.uniform(0, 1, 32)))] + [complete_graph(16)]
    arch = Arch("relational", d_in=64, d_out=10, width=128, depth=3, match="params")
    params = {t.id: arch.target.parameter_counts(wire(t, *arch.target.natural_wiring), arch)["total"] for t in graphs}
    return feature_table(graphs).assign(params=pd.Series(params), family="wsflex")


FEATURES = _width_matched_features()


def _study(beta: float, seed: int = 1) -> pd.DataFrame:
    """3 seeds per graph: beta seed sds along path length, plus seed noise of sd 0.01."""
    rng = np.random.default_rng(seed)
    z = (FEATURES["avg_path_length"] - FEATURES["avg_path_length"].mean()) / FEATURES["avg_path_length"].std()
    rows = [{"topology_id": tid, "replicate": s, "test_acc": 0.85 + 0.01 * (beta * z[tid] + rng.normal())}
            for tid in FEATURES.index for s in range(3)]
    return pd.DataFrame(rows).join(FEATURES, on="topology_id")


def _cv(table):
    names = [c for c in FEATURES.columns if c != "family"]
    return cross_validate(table, "test_acc", names, n_estimators=60, importances=False)


def test_the_tolerance_is_the_relational_targets():
    assert SIZE_TOLERANCE == MATCH_TOLERANCE
    assert FEATURES["params"].max() / FEATURES["params"].min() - 1 <= 2 * MATCH_TOLERANCE


def test_a_wiring_effect_at_fixed_size_is_credited_to_wiring_and_within_the_designs_power():
    cv = _cv(_study(2.0))
    head = cv.headline()
    assert "WARNING" not in head and "CANNOT DETECT" not in head
    assert cv.size["columns"] == ["params"] and cv.size["matched"]  # edge count is wiring here, not size
    assert head["size"].startswith("held fixed by design: params vary by") and "size alone" not in head
    t = cv.table().set_index(["scheme", "model"])
    assert not {"linear-size", "forest-size"} & set(t.index.get_level_values("model"))
    assert t.loc[("kfold", "beyond-size"), "r2"] > 0.5 and t.loc[("kfold", "forest"), "r2"] > 0.5
    assert re.match(r"R² 0\.\d\d ± \d\.\d\d of the variance", head["beyond size"])
    assert "size held fixed" in head["beyond size"] and "pooled" not in head["beyond size"]
    assert list(head)[-1] == "R² ± sd" and "pooled out-of-fold" in head["R² ± sd"]  # said once, at the end
    assert cv.power["along"] == "avg_path_length" and cv.power["detected"] is not None
    assert cv.power["detected"] < 2.0 and "is detected" in head["power"]


def test_pure_seed_noise_gets_the_cannot_detect_line_and_no_scores_as_findings():
    cv = _cv(_study(0.0))
    head = cv.headline()
    assert list(head)[0] == "CANNOT DETECT" and head["CANNOT DETECT"].startswith(
        "this design cannot detect a wiring effect: ")
    assert cv.ceiling["ceiling"] < 0.2
    assert "forest" not in head and "beyond size" not in head and "not findings" in head["scores"]
    assert not any("R² -" in line for line in head.values())
    # the power says what it means beside CANNOT DETECT; no line says "detected" without it
    assert head["power"].startswith("this design would detect an effect of") or "no planted effect" in head["power"]
    assert head["power"].endswith("the topologies here differ by less than that") or "no planted" in head["power"]
    assert not any(" is detected" in line for line in head.values())
    assert "r2_of_ceiling" not in cv.table().columns  # no share of a ceiling below the floor


def test_size_that_varies_is_params_and_wiring_that_only_tracks_it_is_not_credited():
    rng = np.random.default_rng(3)
    n = 60
    params = rng.uniform(1e3, 1e5, n)
    table = pd.DataFrame({"topology_id": [f"{i:x}" for i in range(n)], "params": params,
                          "n_edges": params / 30, "density": rng.random(n),
                          "test_acc": 0.5 + 0.05 * np.log(params) + rng.normal(0, 0.005, n)})
    cv = cross_validate(table, "test_acc", ["params", "n_edges", "density"], groups=None, n_estimators=60,
                        importances=False)
    t = cv.table().set_index("model")
    assert cv.size["columns"] == ["params"] and not cv.size["matched"]
    assert t.loc["forest-size", "r2"] > 0.8 and t.loc["beyond-size", "r2"] < 0.2
    assert "size alone" in cv.headline() and "forest-size on params" in cv.headline()["size alone"]


def test_size_columns_and_design():
    assert size_columns(["n_nodes", "params", "n_edges"]) == ["params"]
    assert size_columns(["n_edges", "density", "n_nodes"]) == ["n_nodes", "n_edges"]
    assert size_columns(["density"]) == []
    frame = pd.DataFrame({"params": [1000, 1010, 1019], "n_edges": [10, 40, 90]})
    assert size_design(frame, ["params"]) == {"columns": ["params"], "spread": pytest.approx(0.019),
                                              "matched": True, "range": [1000.0, 1019.0]}
    assert not size_design(frame.assign(params=[1000, 1010, 1030]), ["params"])["matched"]
    assert not size_design(frame, ["params", "n_edges"])["matched"]


def test_planted_effects_carry_the_noise_of_a_mean_of_seeds():
    rng = np.random.default_rng(0)
    n, s = 2000, 3
    table = pd.DataFrame({"topology_id": np.repeat(np.arange(n), s), "x": np.repeat(rng.random(n), s),
                          "y": rng.normal(0, 1.0, n * s)})  # seed sd 1, no effect
    means = plant(table, "y", "x", 0.0).groupby("topology_id")["y"].mean()
    assert means.var() == pytest.approx(1 / s, rel=0.1)  # not zero: the deviations are shuffled
    means = plant(table, "y", "x", 2.0).groupby("topology_id")["y"].mean()
    assert means.var() == pytest.approx(4 + 1 / s, rel=0.1)
    assert plant(table, "y", "x", 1.0, seed=4).equals(plant(table, "y", "x", 1.0, seed=4))


def test_beyond_size_takes_size_out_of_bag_before_the_wiring():
    rng = np.random.default_rng(2)
    x = pd.DataFrame({"params": rng.uniform(1, 10, 200), "wiring": rng.random(200)})
    y = np.log(x["params"]) + 0.5 * x["wiring"]
    est = BeyondSize(["params"], ["params", "wiring"], seed=0, n_estimators=50).fit(x, y)
    assert est._wiring() == ["wiring"]
    resid = y - est.size_prediction(x)
    assert np.corrcoef(resid, x["wiring"])[0, 1] > 0.7
    fixed = BeyondSize(["params"], ["params", "wiring"], matched=True, n_estimators=50).fit(x, y)
    assert (fixed.size_prediction(x) == y.mean()).all()


def test_fit_prints_size_held_fixed_the_beyond_size_line_and_the_power(tmp_path, capsys):
    from topowire.cli import main

    _study(2.0).assign(family="wsflex").to_csv(tmp_path / "t.csv", index=False)
    assert main(["fit", "--table", str(tmp_path / "t.csv"), "--trees", "30", "-o", str(tmp_path / "p.skops")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "size: held fixed by design: params vary by" in out
    assert re.search(r"beyond size: R² 0\.\d\d ± \d\.\d\d of the variance", out)
    assert "R² ± sd: every R² above is pooled out-of-fold" in out
    assert re.search(r"power: an effect of (0\.25|0\.5|1) x the seed sd", out)
    assert "quadratic (C, L): R²" in out


def test_a_best_feature_warning_explains_a_different_top_importance():
    from types import SimpleNamespace

    from topowire.predict.headline import _importance_note

    imps = pd.DataFrame({"feature": ["spectral_radius", "degree_mean"], "importance": [0.3, 0.2]})
    note = _importance_note(SimpleNamespace(importances=imps, most_chosen="degree_mean", outcome="test_acc"))
    assert note.startswith("; the forest's importances (top features) rank spectral_radius first")
    assert "rank correlation with test_acc" in note
    assert _importance_note(SimpleNamespace(importances=imps, most_chosen="spectral_radius", outcome="test_acc")) == ""
