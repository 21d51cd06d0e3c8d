"""The predictors and baselines, by name: every one an unfitted sklearn Pipeline whose first
step selects its columns, so all are fitted and scored on the same table and folds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from topowire import checks
from topowire.errors import ParameterError

__all__ = ["MODELS", "PREDICTORS", "QUADRATIC", "Columns", "BestFeature", "make_model"]

#: The models :func:`~topowire.predict.cross_validate` scores, in report order:
#: the predictors (``forest``, ``hgb``), the mean, two models of size alone, the graph
#: features on what size leaves (``beyond-size``, :mod:`topowire.predict.beyond`), graph2nn's
#: quadratic in clustering C and path length L (``quadratic-cl``), and a forest on the one
#: feature with the largest |Spearman| on each training fold (``best-feature``).
MODELS = ("forest", "hgb", "mean", "linear-size", "forest-size", "beyond-size", "quadratic-cl", "best-feature")
#: The columns of the quadratic baseline: clustering C and average path length L.
QUADRATIC = ("avg_clustering", "avg_path_length")
#: The models a predictor can be (``fit --model``).
PREDICTORS = ("forest", "hgb")
checks.declare("model", checks.Domain("choice", choices=PREDICTORS))


class Columns(BaseEstimator, TransformerMixin):
    """Select ``columns`` of a table (by name)."""

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, x: pd.DataFrame, y=None) -> Columns:
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        return x[list(self.columns)]


class BestFeature(BaseEstimator, TransformerMixin):
    """Select the one column of ``columns`` with the largest |Spearman| correlation with the
    outcome on the rows it is fitted on (a training fold); ``feature_`` names it."""

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, x: pd.DataFrame, y) -> BestFeature:
        ranks = x[list(self.columns)].rank()
        rho = ranks.corrwith(pd.Series(np.asarray(y), index=x.index).rank()).abs().fillna(-1.0)
        self.feature_ = str(rho.idxmax())
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        return x[[self.feature_]]


def make_model(name: str, columns: Sequence[str], seed: int = 0, n_estimators: int = 300):
    """An unfitted Pipeline for one of :data:`MODELS` on ``columns`` (median imputation
    inside; a forest or hgb seeded by ``seed``)."""
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    checks.check("n_estimators", n_estimators)
    checks.check("seed", seed)
    select = ("select", (BestFeature if name == "best-feature" else Columns)(list(columns)))
    impute = ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
    forest = ("forest", RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed % 2**32,
                                              n_jobs=1))
    steps = {
        "forest": [forest], "forest-size": [forest], "best-feature": [forest],
        "hgb": [("hgb", HistGradientBoostingRegressor(max_iter=n_estimators, min_samples_leaf=5,
                                                      random_state=seed % 2**32))],
        "linear-size": [("scale", StandardScaler()), ("linear", LinearRegression())],
        "mean": [("mean", DummyRegressor(strategy="mean"))],
        "quadratic-cl": [("scale", StandardScaler()), ("quadratic", PolynomialFeatures(2)),
                         ("linear", LinearRegression())],
    }
    if name not in steps:
        raise ParameterError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return Pipeline([select, impute, *steps[name]])
