import json
import re

import numpy as np
import pandas as pd
import pytest

from topowire.errors import DataError, FileFormatError
from topowire.predict import (
    MODELS,
    cross_validate,
    fit_predictor,
    load_predictor,
    noise_ceiling,
    predict,
    save_predictor,
)


def _table(n=60, replicates=1, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    fam = rng.choice(["er", "ws", "ba"], n)
    density = rng.random(n)
    nodes = rng.integers(10, 50, n).astype(float)
    edges = rng.integers(20, 200, n).astype(float)  # independent of density: size cannot see the signal
    base = 0.5 + 0.4 * density
    rows = []
    for i in range(n):
        for r in range(replicates):
            rows.append({"topology_id": f"{i:016x}", "family": fam[i], "replicate": r, "density": density[i],
                         "n_nodes": nodes[i], "n_edges": edges[i], "params": nodes[i] * 30,
                         "junk": rng.random(), "test_acc": base[i] + rng.normal(0, noise)})
    return pd.DataFrame(rows)


FEATURES = ["density", "n_nodes", "n_edges", "params", "junk"]


def test_noise_ceiling_matches_the_variance_decomposition():
    rng = np.random.default_rng(1)
    between = rng.normal(0, 1.0, 400)
    y = np.repeat(between, 4) + rng.normal(0, 2.0, 1600)  # s2_between = 1, s2_within = 4, S = 4
    c = noise_ceiling(pd.Series(y), pd.Series(np.repeat(np.arange(400), 4)))
    assert c["replicates"] == 4
    assert c["var_within"] == pytest.approx(4.0, rel=0.1)
    assert c["ceiling"] == pytest.approx(1.0 / (1.0 + 4.0 / 4), abs=0.08)
    assert noise_ceiling(pd.Series([1.0, 2.0]), pd.Series(["a", "b"])) is None


def test_forest_beats_the_baselines_on_a_signal_the_size_cannot_see():
    cv = cross_validate(_table(), "test_acc", FEATURES, n_estimators=60)
    t = cv.table().set_index(["scheme", "model"])
    # hgb is scored when it is the model; the quadratic in C and L when the table has them
    assert set(t.index.get_level_values("model")) == set(MODELS) - {"hgb", "quadratic-cl"}
    assert "quadratic-cl skipped: the table lacks avg_clustering or avg_path_length" in cv.notes
    assert t.loc[("kfold", "forest"), "r2"] > 0.8
    assert t.loc[("kfold", "mean"), "r2"] < 0.05
    assert t.loc[("kfold", "forest"), "r2"] > t.loc[("kfold", "linear-size"), "r2"] + 0.3
    assert ("leave-one-family-out", "forest") in t.index
    assert len(cv.scores[(cv.scores["scheme"] == "kfold") & (cv.scores["model"] == "forest")]) == 3  # repeats
    assert cv.importances["feature"].iloc[0] == "density"
    # every row is predicted once per repeat, always from a model that did not see it
    assert (cv.oof[cv.oof["scheme"] == "kfold"].groupby("row").size() == 3).all()


def test_cross_validation_counts_its_models_and_the_power_as_it_goes():
    calls = []
    cross_validate(_table(n=30, replicates=2), "test_acc", FEATURES, n_estimators=10, importances=False,
                   progress=lambda done, total: calls.append((done, total)))
    # 2 schemes x 6 models (forest, mean, linear-size, forest-size, beyond-size, best-feature), then the power
    assert calls == [(done, 13) for done in range(14)]


def test_replicates_are_averaged_and_bounded_by_the_ceiling():
    cv = cross_validate(_table(n=40, replicates=3, noise=0.05), "test_acc", FEATURES, n_estimators=60)
    assert cv.n_rows == 40 and cv.ceiling is not None and 0.5 < cv.ceiling["ceiling"] < 1.0
    assert "r2_of_ceiling" in cv.table().columns


def test_save_load_round_trip_and_metadata(tmp_path):
    table = _table()
    pred = fit_predictor(table, "test_acc", FEATURES, n_estimators=30, meta={"task": "reber"})
    save_predictor(pred, tmp_path / "p.skops")
    meta = json.loads((tmp_path / "p.skops.json").read_text())
    assert meta["features"] == FEATURES and meta["outcome"] == "test_acc" and "scikit-learn" in meta["versions"]
    back = load_predictor(tmp_path / "p.skops")
    np.testing.assert_array_equal(predict(back, table[FEATURES]), predict(pred, table[FEATURES]))


def test_the_same_fit_gives_the_same_bytes(tmp_path):
    # skops names members after memory addresses and stamps the time; topowire renumbers
    files = []
    for i in range(2):
        pred = fit_predictor(_table(), "test_acc", FEATURES, n_estimators=5)
        save_predictor(pred, tmp_path / f"p{i}.skops")
        files.append((tmp_path / f"p{i}.skops").read_bytes())
    assert files[0] == files[1]
    back = load_predictor(tmp_path / "p0.skops")
    np.testing.assert_array_equal(predict(back, _table()[FEATURES]), predict(pred, _table()[FEATURES]))


def test_a_file_with_untrusted_types_is_refused(tmp_path):
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    pred = fit_predictor(_table(), "test_acc", FEATURES, n_estimators=10)
    save_predictor(pred, tmp_path / "p.skops")
    evil = Pipeline([("f", FunctionTransformer(np.log1p))]).fit(np.ones((3, 1)))
    sio.dump(evil, tmp_path / "p.skops")  # same metadata, another model inside
    with pytest.raises(FileFormatError, match="does not trust"):
        load_predictor(tmp_path / "p.skops")
    (tmp_path / "p.skops").write_bytes(b"junk")
    with pytest.raises(FileFormatError, match=r"p.skops' is not a predictor \(a .skops file that `topowire fit`"):
        load_predictor(tmp_path / "p.skops")
    (tmp_path / "results.csv").write_text("topology_id,test_acc\na,0.5\n")  # a table given as the predictor
    with pytest.raises(FileFormatError, match="results.csv' is not a predictor"):
        load_predictor(tmp_path / "results.csv")


def test_feature_mismatch_is_refused():
    table = _table()
    pred = fit_predictor(table, "test_acc", FEATURES, n_estimators=10)
    with pytest.raises(DataError, match=r"lacks the predictor's feature\(s\) junk"):
        predict(pred, table[FEATURES[:-1]])
    # other columns are carried through untouched, after the predictions
    out = predict(pred, table[["family", *FEATURES]].assign(extra=1.0))
    assert list(out.columns) == ["predicted_test_acc", "outside_training", "family", "extra"]
    assert out["family"].equals(table["family"])
    np.testing.assert_array_equal(out["predicted_test_acc"], predict(pred, table[FEATURES])["predicted_test_acc"])


def test_split_conformal_intervals_cover_held_out_topologies():
    from topowire.predict import conformal_half_width, cross_validate, held_out_scores

    # the quantile rule: with 9 residuals, a 90% interval takes the largest
    assert conformal_half_width(np.arange(1, 10) * -1.0, 0.9) == 9.0
    assert conformal_half_width(np.arange(1, 20), 0.9) == 18.0  # ceil(20 * 0.9) = 18th of 19
    table = _table(n=200, noise=0.05, seed=3)
    cv = cross_validate(table, "test_acc", FEATURES, n_estimators=30, importances=False)
    iv = cv.interval()
    assert 0.85 <= iv["coverage"] <= 0.97 and iv["half_width"] > 0
    pred = fit_predictor(table, "test_acc", FEATURES, n_estimators=30, meta={"interval": iv})
    fresh = _table(n=200, noise=0.05, seed=4)
    out = predict(pred, fresh[[*FEATURES, "test_acc"]])
    np.testing.assert_allclose(out["test_acc_high"] - out["test_acc_low"], 2 * iv["half_width"])
    scores = held_out_scores(out, "test_acc")
    assert 0.8 <= scores["coverage"] <= 1.0 and scores["r2"] > 0.5


def test_bad_tables():
    with pytest.raises(DataError, match="outcome column 'acc' is not in the table"):
        cross_validate(_table(), "acc", FEATURES)
    with pytest.raises(DataError, match="feature column\\(s\\) girth"):
        cross_validate(_table(), "test_acc", ["girth"])
    with pytest.raises(DataError, match="not numeric"):
        cross_validate(_table(), "test_acc", ["family"])
    with pytest.raises(DataError, match="at least 5 topologies"):
        cross_validate(_table(n=3), "test_acc", FEATURES)


def test_extra_forests_measure_what_added_features_bring():
    table = _table(n=80)
    base = ["n_nodes", "n_edges", "params", "junk"]  # without the signal
    cv = cross_validate(table, "test_acc", base + ["density"], n_estimators=40, extra_forests={"forest-graph": base})
    t = cv.table().set_index(["scheme", "model"])
    assert t.loc[("kfold", "forest"), "r2"] > t.loc[("kfold", "forest-graph"), "r2"] + 0.5
    with pytest.raises(Exception, match="clash"):
        cross_validate(table, "test_acc", base, extra_forests={"mean": base})
    with pytest.raises(DataError, match="nope"):
        cross_validate(table, "test_acc", base, extra_forests={"other": ["nope"]})


def test_predict_flags_rows_outside_the_training_range(tmp_path):
    """Each feature's fitted [min, max] is saved; a row beyond it by over a tenth of its width is named."""
    from topowire.predict import OUTSIDE_MARGIN, extrapolation_warning, prediction_notes

    table = _table(n=60)
    pred = fit_predictor(table, "test_acc", FEATURES, n_estimators=10)
    save_predictor(pred, tmp_path / "p.skops")
    pred = load_predictor(tmp_path / "p.skops")
    lo, hi = table["n_nodes"].min(), table["n_nodes"].max()
    assert pred.ranges_["n_nodes"] == [lo, hi]
    margin = OUTSIDE_MARGIN * (hi - lo)
    rows = table[FEATURES].head(4).copy()
    rows["n_nodes"] = [lo, hi + 0.5 * margin, hi + 2 * margin, lo - 2 * margin]  # inside, within margin, out, out
    rows.loc[rows.index[3], "density"] = 5.0
    rows.loc[rows.index[0], "junk"] = np.nan  # imputed, never outside
    out = predict(pred, rows)
    assert out["outside_training"].tolist() == ["", "", "n_nodes", "density,n_nodes"]
    warning = extrapolation_warning(out)
    assert warning.startswith("2 of 4 rows lie outside the range the predictor was fitted on (by over 10% of its "
                              "width; most often n_nodes (2), density (1))")
    assert prediction_notes(out, "test_acc") == [f"WARNING: {warning}"]
    assert extrapolation_warning(out.head(2)) is None and prediction_notes(out.head(2), "test_acc") == []


def test_hgb_is_a_predictor_scored_beside_the_forest(tmp_path, capsys):
    from topowire.cli import main

    rng = np.random.default_rng(1)
    table = pd.DataFrame({"density": rng.uniform(0, 1, 60), "n_nodes": rng.integers(8, 30, 60)})
    table["test_acc"] = 0.5 + 0.4 * table["density"] ** 2 + rng.normal(0, 0.02, 60)
    table.to_csv(tmp_path / "t.csv", index=False)
    assert main(["fit", "--table", str(tmp_path / "t.csv"), "--model", "hgb", "--trees", "50",
                 "-o", str(tmp_path / "p.skops")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"hgb: R² 0\.\d\d", out) and re.search(r"forest: R² 0\.\d\d", out)
    predictor = load_predictor(tmp_path / "p.skops")
    assert predictor.model == "hgb" and type(predictor.pipeline_.steps[-1][1]).__name__ == "HistGradientBoostingRegressor"
    got = predict(predictor, table)["predicted_test_acc"]
    assert np.corrcoef(got, table["test_acc"])[0, 1] > 0.95
