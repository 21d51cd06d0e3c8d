"""Predictions are guarded: no leaking column, no degenerate outcome, nothing skipped in silence."""

import numpy as np
import pandas as pd
import pytest

from topowire.cli import main
from topowire.errors import DataError, ParameterError
from topowire.predict import check_outcome, cross_validate
from topowire.study import fit_table, select_features


def _foreign(n=60, seed=0):
    """A results table as another project writes it: graph features under their own and
    registry names, the outcome, and outcome columns that must never become features."""
    rng = np.random.default_rng(seed)
    density = rng.random(n)
    transitivity = rng.random(n)
    acc = 0.5 + 0.2 * density + 0.2 * transitivity + rng.normal(0, 0.02, n)
    return pd.DataFrame({
        "graph": [f"g{i}" for i in range(n)], "family": rng.choice(["er", "ws", "ba"], n),
        "density": density, "transitivity": transitivity, "my_feature": rng.random(n),
        "n_nodes": rng.integers(10, 40, n).astype(float),
        "test_acc": acc, "test_loss": 1 - acc + rng.normal(0, 0.001, n), "time": rng.random(n) * 100,
    })


def test_a_leaking_column_is_never_a_feature(tmp_path, capsys):
    table = _foreign()
    used, ignored = select_features(table, "test_acc")
    assert used == ["density", "transitivity", "n_nodes"]
    assert "test_loss" in ignored and "time" in ignored and "my_feature" in ignored
    assert select_features(table, "test_acc", ["my_feature"])[0] == ["density", "transitivity", "my_feature",
                                                                      "n_nodes"]
    table.to_csv(tmp_path / "t.csv", index=False)
    assert main(["fit", "--table", str(tmp_path / "t.csv"), "--trees", "10", "-o", str(tmp_path / "p.skops")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "features used (3): density, transitivity, n_nodes" in out
    assert "columns ignored (5; not known features -- name them with --columns): graph, my_feature, test_loss, time" \
        in out.replace(", family", "")
    meta = __import__("json").loads((tmp_path / "p.skops.json").read_text())
    assert "test_loss" not in meta["features"]


def test_naming_the_target_or_a_missing_column_is_refused(tmp_path, capsys):
    _foreign().to_csv(tmp_path / "t.csv", index=False)
    for argv, message in ((["--columns", "test_acc"], "names the outcome"),
                          (["--columns", "densty"], "names densty, not in the table"),
                          (["--group", "familly"], "group column 'familly' is not in the table"),
                          (["--size-columns", "params"], "size column 'params' is not in the table")):
        code = main(["fit", "--table", str(tmp_path / "t.csv"), *argv, "-o", str(tmp_path / "p.skops")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "p.skops").exists()


@pytest.mark.parametrize("outcome, message", [
    (np.full(40, 0.5), "is constant (0.5 for all 40 topologies)"),
    (np.r_[np.full(38, 0.5), 0.6, 0.7], "is near-constant (38 of 40 topologies share the value 0.5)"),
])
def test_a_degenerate_target_is_refused_never_scored(outcome, message, tmp_path, capsys):
    table = _foreign(40).assign(test_acc=outcome)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_table(table, "test_acc", n_estimators=5)
    table.to_csv(tmp_path / "t.csv", index=False)
    code = main(["fit", "--table", str(tmp_path / "t.csv"), "-o", str(tmp_path / "p.skops")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and not (tmp_path / "p.skops").exists()


def test_a_target_at_chance_is_refused():
    y = 0.5 + np.random.default_rng(0).normal(0, 0.005, 50)
    with pytest.raises(DataError, match=r"within 0.02 of chance \(0.5\)"):
        check_outcome(y, "test_acc", chance=0.5)
    check_outcome(y, "test_acc")  # without a task there is no chance level: it varies, so it may be scored
    check_outcome(y + 0.2, "test_acc", chance=0.5)


def test_what_cannot_run_is_announced_and_size_columns_can_be_named():
    table = _foreign().drop(columns=["n_nodes"])
    cv, _ = fit_table(table.drop(columns=["family"]), "test_acc", n_estimators=10)
    assert set(cv.table()["model"]) == {"forest", "mean", "best-feature"}
    assert not any("best-feature" in n for n in cv.notes)
    assert any("size baselines skipped" in n and "--size-columns" in n for n in cv.notes)
    assert "beyond-size skipped: no size columns to go beyond" in cv.notes
    assert any("leave-one-family-out" not in n and "noise ceiling skipped" in n for n in cv.notes)
    assert "leave-one-family-out" not in set(cv.table()["scheme"])
    cv, _ = fit_table(table, "test_acc", ["my_feature"], size=["my_feature"], n_estimators=10)
    assert {"linear-size", "forest-size"} <= set(cv.table()["model"]) and not any("size base" in n for n in cv.notes)
    assert "beyond-size" in set(cv.table()["model"])  # density and transitivity on what my_feature leaves
    same, _ = fit_table(table, "test_acc", " my_feature,", size="my_feature", n_estimators=10)  # as the CLI gives them
    pd.testing.assert_frame_equal(same.scores, cv.scores)
    assert cv.notes[0] == "features used (3): density, transitivity, my_feature"
    with pytest.raises(ParameterError, match="n_estimators must be an integer >= 1, got n_estimators = 0"):
        fit_table(table, "test_acc", n_estimators=0)
    cv = cross_validate(table, "test_acc", ["density"], n_estimators=10, importances=False)
    assert "best-feature" not in set(cv.table()["model"]) and any("best-feature skipped" in n for n in cv.notes)
    assert "leave-one-family-out" in set(cv.table()["scheme"])


def test_the_headline_says_when_the_forest_loses_and_spreads_are_over_folds():
    table = _foreign()
    cv = cross_validate(table, "test_acc", ["density", "transitivity", "n_nodes"], size=["n_nodes"],
                        n_estimators=30, importances=False)
    head = cv.headline()
    assert "WARNING" not in head and " ± " in head["forest"] and "sd of R² over the folds" in head["R² ± sd"]
    assert set(cv.chosen) <= {"density", "transitivity"}  # found inside every training fold
    t = cv.table().set_index(["scheme", "model"])
    folds = cv.folds[(cv.folds["scheme"] == "kfold") & (cv.folds["model"] == "forest")]
    assert len(folds) == 15 and t.loc[("kfold", "forest"), "r2_fold_sd"] == pytest.approx(folds["r2"].std())
    noise = table.assign(test_acc=np.random.default_rng(5).random(len(table)))
    head = cross_validate(noise, "test_acc", ["density", "transitivity", "n_nodes"], size=["n_nodes"],
                          n_estimators=30, importances=False).headline()
    assert list(head)[0] == "WARNING" and "does not beat" in head["WARNING"]


def test_the_best_single_feature_is_chosen_inside_the_folds():
    # 40 noise features and a noise outcome: chosen on all rows, the best of them would look
    # predictive; chosen inside each training fold, it scores no better than the mean
    rng = np.random.default_rng(1)
    table = pd.DataFrame(rng.random((60, 40)), columns=[f"f{i}" for i in range(40)]).assign(y=rng.random(60))
    cv = cross_validate(table, "y", [f"f{i}" for i in range(40)], groups=None, n_estimators=30, importances=False)
    assert cv.table().set_index("model").loc["best-feature", "r2"] < 0.05
    assert len(set(cv.chosen)) > 1


def test_predict_carries_columns_through_and_scores_a_present_target(tmp_path, capsys):
    table = _foreign(80)
    table.to_csv(tmp_path / "t.csv", index=False)
    assert main(["fit", "--table", str(tmp_path / "t.csv"), "--trees", "20", "-o", str(tmp_path / "p.skops")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "90% interval: prediction ±" in out and "of held-out topologies in CV" in out
    _foreign(40, seed=9).to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(tmp_path / "p.skops"), str(tmp_path / "new.csv"), "-o", str(tmp_path / "o.csv")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "against the table's test_acc: r2 " in out and ", coverage 0." in out
    got = pd.read_csv(tmp_path / "o.csv")
    assert list(got.columns[:3]) == ["predicted_test_acc", "test_acc_low", "test_acc_high"]
    assert {"graph", "family", "test_loss", "time", "test_acc"} <= set(got.columns)
    assert (got["test_acc_low"] < got["predicted_test_acc"]).all()


def test_the_warning_names_a_single_feature_that_carries_everything():
    table = _foreign()
    table["test_acc"] = 0.5 + 0.4 * table["density"] + np.random.default_rng(2).normal(0, 0.01, len(table))
    cv = cross_validate(table, "test_acc", ["density", "transitivity", "n_nodes"], size=["n_nodes"],
                        n_estimators=30, importances=False)
    head = cv.headline()
    assert head["WARNING"].startswith("the forest does not beat the best single feature (most often density)")
