"""A fitted predictor of trained performance (:class:`TopologyPredictor`, an sklearn
regressor over a feature table) and what it says about new topologies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from topowire.errors import DataError
from topowire.predict.cv import scores as scores_of
from topowire.predict.models import make_model
from topowire.predict.table import aggregate, check_finite, check_table

__all__ = ["TopologyPredictor", "Predictor", "fit_predictor", "predict", "extrapolation_warning", "held_out_scores",
           "prediction_notes", "OUTSIDE_MARGIN"]

#: How far beyond a feature's training range (as a fraction of its width) a value must lie
#: to count as outside it: with dozens of features and a few dozen topologies, some feature
#: of a new draw from the same recipe passes its training extreme by a hair more often than not.
OUTSIDE_MARGIN = 0.1


class TopologyPredictor(BaseEstimator, RegressorMixin):
    """Predicts an outcome (test accuracy) of a topology from its features.

    Parameters
    ----------
    features : sequence of str
        The feature columns it reads (of a table given to :meth:`fit` and :meth:`predict`).
    outcome : str
        What it predicts.
    model : {"forest", "hgb"}
        The regressor (:mod:`topowire.predict.models`).
    seed : int
        Its seed.
    n_estimators : int
        Trees (forest) or boosting iterations (hgb).
    meta : dict, optional
        Provenance kept with it (the run, the cross-validated scores, the interval).

    Attributes
    ----------
    pipeline_ : sklearn.pipeline.Pipeline
        The fitted model.
    ranges_ : dict of str to [float, float]
        Each feature's range on the rows it was fitted on (a forest does not extrapolate).
    """

    def __init__(self, features: Sequence[str] = (), outcome: str = "test_acc", model: str = "forest", seed: int = 0,
                 n_estimators: int = 300, meta: dict[str, Any] | None = None) -> None:
        self.features = features
        self.outcome = outcome
        self.model = model
        self.seed = seed
        self.n_estimators = n_estimators
        self.meta = meta

    def fit(self, x: pd.DataFrame, y) -> TopologyPredictor:
        features = list(self.features)
        self.pipeline_ = make_model(self.model, features, self.seed, self.n_estimators).fit(x[features], y)
        self.ranges_ = {f: [float(x[f].min()), float(x[f].max())] for f in features if x[f].notna().any()}
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict(x[list(self.features)])


#: The name of the fitted predictor before it was an sklearn estimator.
Predictor = TopologyPredictor


def fit_predictor(table: pd.DataFrame, outcome: str, features: Sequence[str], *, seed: int = 0,
                  n_estimators: int = 300, meta: dict[str, Any] | None = None, model: str = "forest"
                  ) -> TopologyPredictor:
    """Fit a predictor on every row (per-topology means when replicates exist).

    Its ``ranges_`` are each feature's [min, max] over the rows fitted on, which
    :func:`predict` checks new rows against.
    """
    features = list(features)
    check_table(table, outcome, features)
    data, _ = aggregate(table, outcome, features)
    return TopologyPredictor(features, outcome, model, seed, n_estimators, meta).fit(
        data, data[outcome].to_numpy(dtype=float))


def predict(predictor: TopologyPredictor, table: pd.DataFrame) -> pd.DataFrame:
    """Predictions for every row, with the predictor's interval, and the table's other
    columns carried through untouched.

    Returns
    -------
    DataFrame
        ``predicted_<outcome>``, ``<outcome>_low`` and ``<outcome>_high`` (the split-conformal
        interval recorded at fit, when there is one), ``outside_training`` (the features
        whose value lies outside the range the predictor was fitted on by more than
        :data:`OUTSIDE_MARGIN` of its width, comma-separated; empty inside it), then the
        table's other columns.

    Raises
    ------
    DataError
        A feature of the predictor missing from the table.
    """
    missing = [f for f in predictor.features if f not in table.columns]
    if missing:
        raise DataError(f"the table lacks the predictor's feature(s) {', '.join(missing)}")
    check_finite(table, predictor.features)
    outcome = predictor.outcome
    out = pd.DataFrame({f"predicted_{outcome}": predictor.predict(table)}, index=table.index)
    width = ((predictor.meta or {}).get("interval") or {}).get("half_width")
    if width is not None:
        out[f"{outcome}_low"] = out[f"predicted_{outcome}"] - width
        out[f"{outcome}_high"] = out[f"predicted_{outcome}"] + width
    ranges = getattr(predictor, "ranges_", None)
    if ranges is not None:
        names = [f for f in predictor.features if f in ranges]
        x = table[names].to_numpy(dtype=float)
        lo, hi = (np.array([ranges[f][i] for f in names]) for i in (0, 1))
        margin = OUTSIDE_MARGIN * (hi - lo)
        outside = (x < lo - margin) | (x > hi + margin)  # NaN (imputed) is never outside
        out["outside_training"] = [",".join(f for f, o in zip(names, row) if o) for row in outside]
    rest = [c for c in table.columns if c not in predictor.features and c not in out.columns]
    return out.join(table[rest])


def extrapolation_warning(predicted: pd.DataFrame) -> str | None:
    """A warning in words when rows of :func:`predict`'s output lie outside the predictor's
    training range (None when every row lies inside, or the predictor records no range)."""
    if "outside_training" not in predicted.columns:
        return None
    flagged = predicted.loc[predicted["outside_training"] != "", "outside_training"]
    if flagged.empty:
        return None
    counts = flagged.str.split(",").explode().value_counts()
    most = ", ".join(f"{f} ({c})" for f, c in counts.head(4).items())
    return (f"{len(flagged)} of {len(predicted)} rows lie outside the range the predictor was fitted on "
            f"(by over {OUTSIDE_MARGIN:.0%} of its width; most often {most}): "
            "a forest predicts the edge of its training data there, and the interval was not measured there")


def held_out_scores(predicted: pd.DataFrame, outcome: str) -> dict[str, float] | None:
    """R², MAE, Spearman and interval coverage of predictions against a ``outcome`` column
    carried through :func:`predict` (None when the table has no such column)."""
    if outcome not in predicted.columns:
        return None
    y = predicted[outcome].to_numpy(dtype=float)
    scores = scores_of(y, predicted[f"predicted_{outcome}"].to_numpy(dtype=float))
    if f"{outcome}_low" in predicted.columns:
        scores["coverage"] = float(((y >= predicted[f"{outcome}_low"]) & (y <= predicted[f"{outcome}_high"])).mean())
    return scores


def prediction_notes(predicted: pd.DataFrame, outcome: str) -> list[str]:
    """What to say about :func:`predict`'s output: a ``WARNING`` line when rows lie outside
    the training range, and the scores against a ``outcome`` column the table carried."""
    notes = [f"WARNING: {w}" for w in [extrapolation_warning(predicted)] if w is not None]
    scores = held_out_scores(predicted, outcome)
    if scores is not None:
        notes.append(f"against the table's {outcome}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return notes
