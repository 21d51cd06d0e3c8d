"""Wiring beyond size: what graph features explain once the network's size is accounted for,
whether the design held size fixed, and the smallest wiring effect the design can detect.

*Size* is the network's size -- the quantity its design matched: FLOPs (``flops``, where
a study's arch matches them, as graph2nn's relational MLP does), else its effective
parameters (``params``; every other target runs a number of operations proportional to
them) -- or, in a table without either, the graph's nodes and edges. Never the edge count
when parameters are present: in a design that holds parameters fixed (the relational MLP's
width matching, or a recipe fixing n and the edge count) the edge count and density are wiring.

* :func:`size_design` -- whether size was held fixed by design: the parameters vary by no
  more than the matching tolerance (then a size baseline could only fit the rounding residue
  of a width search, and through it the density; none is fitted).
* :class:`BeyondSize` -- a size model (a forest on the size columns, residuals taken out of
  bag; the mean when size is fixed) and a forest on the other features fitted to what it
  leaves; scored on held-out folds as the R² of the residuals (``beyond-size``).
* :func:`design_power` -- the design's power: an effect of ``beta`` seed sds is planted along
  a feature on the study's own replicate noise (every model's deviation from its
  topology's mean) and recovered by the same cross-validation; the smallest ``beta``
  detected is reported.
* :func:`detectable` -- whether the design can detect a wiring effect at all: not when the
  noise ceiling is below 0.2 or the topologies' means spread no more than seed noise would.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from topowire.seeds import derive

__all__ = ["SIZE_TOLERANCE", "POWER_MULTIPLES", "CEILING_FLOOR", "size_columns", "size_design", "BeyondSize",
           "plant", "design_power", "detectable", "residual_scores"]

#: How far a parameter-matched network may land from its budget (the relational target's
#: width search, ``topowire.compiler.targets.relational.MATCH_TOLERANCE``): parameters within
#: ±1% of one budget, so at most ~2% apart, are size held fixed.
SIZE_TOLERANCE = 0.01
#: The planted effects tried for the power, in seed standard deviations.
POWER_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Below this noise ceiling a design cannot detect a wiring effect.
CEILING_FLOOR = 0.2
#: A planted effect is detected when the pooled out-of-fold R² of every repeat of the CV is
#: at least this.
DETECT_R2 = 0.1


def size_columns(columns: Sequence[str]) -> list[str]:
    """The columns that measure a network's size: ``flops`` if present (a study whose arch
    matches FLOPs carries it), else ``params``, else the graph's ``n_nodes`` and ``n_edges``
    that are."""
    columns = list(columns)
    for size in ("flops", "params"):
        if size in columns:
            return [size]
    return [c for c in ("n_nodes", "n_edges") if c in columns]


def size_design(data: pd.DataFrame, size: Sequence[str]) -> dict:
    """Whether size was held fixed: every size column's relative spread ``max / min - 1``
    (``params`` first) is at most ``2 * SIZE_TOLERANCE``.

    Returns
    -------
    dict
        ``columns``, ``spread`` (the largest relative spread), ``matched`` (bool) and
        ``range`` (min and max of the first size column).
    """
    size = list(size)
    if not size:
        return {"columns": [], "spread": float("nan"), "matched": False, "range": None}
    spreads = []
    for c in size:
        v = data[c].to_numpy(dtype=float)
        low, high = np.nanmin(v), np.nanmax(v)
        spreads.append(float(high / low - 1) if low > 0 else (0.0 if high == low else float("inf")))
    v = data[size[0]].to_numpy(dtype=float)
    spread = max(spreads)
    return {"columns": size, "spread": spread, "matched": bool(spread <= 2 * SIZE_TOLERANCE + 1e-12),
            "range": [float(np.nanmin(v)), float(np.nanmax(v))]}


def _forest(seed: int, n_estimators: int, oob: bool = False):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed % 2**32,
                                 n_jobs=1, oob_score=oob)


class BeyondSize(BaseEstimator, RegressorMixin):
    """Size first, then the wiring on what size leaves.

    ``fit`` fits the size model on ``size`` (a forest, whose out-of-bag predictions give
    the training residuals, so the second stage sees residuals as a held-out row would
    have them; the mean when ``matched`` or without size columns), then a forest on
    ``features`` to the residuals. ``predict`` is their sum; ``size_prediction`` the first.

    Parameters
    ----------
    size : sequence of str
        Size columns.
    features : sequence of str
        Wiring columns (size columns among them are dropped).
    matched : bool
        Size held fixed by design: the size model is the mean.
    seed, n_estimators : int
        The forests' seed and trees.
    """

    def __init__(self, size: Sequence[str] = (), features: Sequence[str] = (), matched: bool = False, seed: int = 0,
                 n_estimators: int = 300) -> None:
        self.size, self.features, self.matched = size, features, matched
        self.seed, self.n_estimators = seed, n_estimators

    def _wiring(self) -> list[str]:
        return [c for c in self.features if c not in set(self.size)]

    def fit(self, x: pd.DataFrame, y) -> BeyondSize:
        from sklearn.impute import SimpleImputer

        y = np.asarray(y, dtype=float)
        self.offset_ = float(y.mean())
        self.size_model_ = None
        base = np.full(len(y), self.offset_)
        if self.size and not self.matched:
            with warnings.catch_warnings():  # a row no tree left out gets no OOB score: predicted below
                warnings.filterwarnings("ignore", "Some inputs do not have OOB scores", UserWarning)
                self.size_model_ = _forest(self.seed, self.n_estimators, oob=True).fit(x[list(self.size)], y)
            oob = self.size_model_.oob_prediction_
            base = np.where(np.isfinite(oob), oob, self.size_model_.predict(x[list(self.size)]))
        self.imputer_ = SimpleImputer(strategy="median", keep_empty_features=True).fit(x[self._wiring()])
        seed = derive(self.seed, "beyond-size")
        self.wiring_model_ = _forest(seed, self.n_estimators).fit(self.imputer_.transform(x[self._wiring()]), y - base)
        return self

    def size_prediction(self, x: pd.DataFrame) -> np.ndarray:
        """What size alone predicts for these rows."""
        if self.size_model_ is None:
            return np.full(len(x), self.offset_)
        return self.size_model_.predict(x[list(self.size)])

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        wiring = self.wiring_model_.predict(self.imputer_.transform(x[self._wiring()]))
        return self.size_prediction(x) + wiring


def residual_scores(estimator: BeyondSize, x: pd.DataFrame, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Held-out rows' residuals after size, and the wiring forest's prediction of them."""
    base = estimator.size_prediction(x)
    return np.asarray(y, dtype=float) - base, estimator.predict(x) - base


def detectable(ceiling: dict | None) -> str | None:
    """Why this design cannot detect a wiring effect (None when it can, or cannot tell)."""
    if not ceiling:
        return None
    sd_means = np.sqrt(ceiling["var_between"] + ceiling["var_within"] / ceiling["replicates"])
    se_mean = np.sqrt(ceiling["var_within"] / ceiling["replicates"])
    if ceiling["var_between"] <= 0 or not sd_means > se_mean * (1 + 1e-9):
        return (f"the topologies' mean scores spread no more than seed noise alone would make them (sd {sd_means:.3g} "
                f"against {se_mean:.3g} for a mean of {ceiling['replicates']:.0f} seeds)")
    if ceiling["ceiling"] < CEILING_FLOOR:
        return (f"the noise ceiling is {ceiling['ceiling']:.2f}, below {CEILING_FLOOR}: almost all the variance "
                "between topologies is seed noise")
    return None


def plant(table: pd.DataFrame, outcome: str, along: str, beta: float, seed: int = 0) -> pd.DataFrame:
    """The table with its outcome replaced by ``beta`` seed sds along ``along`` (standardised
    over topologies) plus the study's own replicate noise: every model's deviation from its
    topology's mean, scaled by ``sqrt(S / (S - 1))`` to the seed sd and shuffled across models
    (so a topology's mean carries the noise of S seeds, not their zero sum) -- a known wiring
    effect on this design's noise."""
    y = table[outcome].astype(float)
    groups = table["topology_id"]
    deviation = (y - y.groupby(groups).transform("mean")).to_numpy()
    s = float(groups.value_counts().mean())
    noise = np.random.default_rng(derive(seed, "power")).permutation(deviation) * np.sqrt(s / max(s - 1, 1))
    sd = float(np.sqrt(y.groupby(groups).var(ddof=1).mean()))
    per_topology = table.groupby("topology_id")[along].first()
    z = (per_topology - per_topology.mean()) / (per_topology.std(ddof=1) or 1.0)
    return table.assign(**{outcome: beta * sd * groups.map(z.fillna(0.0)).to_numpy() + noise})


def design_power(table: pd.DataFrame, outcome: str, features: Sequence[str], size: Sequence[str], matched: bool, *,
                 seed: int = 0, n_estimators: int = 50, along: str | None = None,
                 multiples: Sequence[float] = POWER_MULTIPLES, n_splits: int = 5, n_repeats: int = 2) -> dict | None:
    """The smallest effect, in seed sds along ``along`` (default ``avg_path_length``, else the
    first wiring feature), that the beyond-size cross-validation detects on this design.

    Each multiple is planted (:func:`plant`) and scored by ``n_repeats`` x ``n_splits``-fold
    CV of :class:`BeyondSize`; it is detected when every repeat's pooled out-of-fold R² is
    at least ``DETECT_R2`` (0.1). Multiples are tried from the smallest; the first detected
    is the power.

    Returns
    -------
    dict or None
        ``along``, ``seed_sd``, ``tried`` (each multiple with its R² per repeat) and
        ``detected`` (the smallest multiple detected, or None); None without replicates or
        a wiring feature.
    """
    from sklearn.metrics import r2_score
    from sklearn.model_selection import RepeatedKFold

    wiring = [c for c in features if c not in set(size)]
    if "topology_id" not in table.columns or not table["topology_id"].duplicated().any() or not wiring:
        return None
    along = along or ("avg_path_length" if "avg_path_length" in wiring else wiring[0])
    sd = float(np.sqrt(table.groupby("topology_id")[outcome].var(ddof=1).mean()))
    tried, detected = [], None
    for beta in multiples:
        planted = plant(table, outcome, along, beta, seed)
        data = planted.groupby("topology_id", sort=False).agg(
            {c: ("mean" if c == outcome else "first") for c in [outcome, *dict.fromkeys([*size, *wiring])]})
        x, y = data.drop(columns=[outcome]), data[outcome].to_numpy(dtype=float)
        folds = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=derive(seed, "power") % 2**32)
        pooled: list[tuple[list, list]] = [([], []) for _ in range(n_repeats)]
        for i, (tr, te) in enumerate(folds.split(x)):
            est = BeyondSize(list(size), wiring, matched, seed, n_estimators).fit(x.iloc[tr], y[tr])
            r, rhat = residual_scores(est, x.iloc[te], y[te])
            pooled[i // n_splits][0].append(r)
            pooled[i // n_splits][1].append(rhat)
        r2s = [float(r2_score(np.concatenate(truth), np.concatenate(guess))) for truth, guess in pooled]
        tried.append({"multiple": beta, "r2": float(np.mean(r2s)), "r2_repeats": r2s})
        if min(r2s) >= DETECT_R2:
            detected = beta
            break
    return {"along": along, "seed_sd": sd, "tried": tried, "detected": detected}
