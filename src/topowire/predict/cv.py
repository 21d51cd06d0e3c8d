"""Cross-validation of the predictors beside their baselines (sklearn's ``cross_validate``).

Every model is a Pipeline (:mod:`topowire.predict.models`) fitted inside each fold --
the best-single-feature baseline chooses its feature there too -- so nothing is fitted
outside a fold. Rows are averaged per topology first; with replicate seeds the noise
ceiling bounds every score (:mod:`topowire.predict.ceiling`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from topowire.errors import DataError, ParameterError
from topowire.predict.beyond import (
    CEILING_FLOOR,
    BeyondSize,
    design_power,
    residual_scores,
    size_columns,
    size_design,
)
from topowire.predict.ceiling import conformal_half_width, interval_coverage
from topowire.predict.models import MODELS, PREDICTORS, QUADRATIC, make_model
from topowire.predict.table import aggregate, check_outcome, check_table
from topowire.seeds import derive

__all__ = ["CVResult", "cross_validate", "permutation_importance", "scores"]

#: Trees of each of the beyond-size model's two forests (at most; fewer when the predictor has fewer).
BEYOND_TREES = 100


@dataclass
class CVResult:
    """Cross-validation scores and what they rest on.

    ``scores`` has one row per scheme, model and repetition, computed on the repetition's
    pooled out-of-fold predictions; ``folds`` one row per scheme, model and fold (the
    spreads are over folds). ``oof`` holds the predictor's (``model``: the forest, or
    hgb) out-of-fold predictions, ``importances`` its held-out permutation importances, ``chosen`` the feature the
    ``best-feature`` baseline picked in each training fold, and ``notes`` every scheme or
    baseline that could not run, with the reason. ``size`` says how size was measured and
    whether the design held it fixed (:func:`~topowire.predict.beyond.size_design`);
    ``power`` is the design's power (:func:`~topowire.predict.beyond.design_power`). The
    ``beyond-size`` rows score the R² of the residuals after size.
    """

    scores: pd.DataFrame
    oof: pd.DataFrame
    importances: pd.DataFrame
    ceiling: dict[str, float] | None
    n_rows: int
    features: list[str] = field(default_factory=list)
    folds: pd.DataFrame = field(default_factory=pd.DataFrame)
    chosen: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcome: str = "test_acc"
    model: str = "forest"
    size: dict = field(default_factory=dict)
    power: dict | None = None

    def table(self) -> pd.DataFrame:
        """Per model and scheme: the pooled scores (mean over repeats), their spread over
        folds (``*_fold_sd``) and R² as a fraction of the noise ceiling."""
        t = self.scores.groupby(["scheme", "model"], sort=False).agg(
            r2=("r2", "mean"), mae=("mae", "mean"), spearman=("spearman", "mean")).reset_index()
        if not self.folds.empty:
            sd = self.folds.groupby(["scheme", "model"], sort=False)[["r2", "spearman"]].std()
            t = t.join(sd.add_suffix("_fold_sd"), on=["scheme", "model"])
        if self.ceiling and self.ceiling["ceiling"] >= CEILING_FLOOR:  # no share of a ceiling below the floor
            t["r2_of_ceiling"] = t["r2"] / self.ceiling["ceiling"]
        return t

    def interval(self, level: float = 0.9) -> dict[str, float]:
        """The predictor's split-conformal interval: its half-width (from the first repeat's
        out-of-fold residuals, every topology once) and its coverage of held-out folds."""
        first = self.oof[(self.oof["scheme"] == "kfold") & (self.oof["repeat"] == 0)]
        return {"level": level, "half_width": conformal_half_width(first["measured"] - first["predicted"], level),
                "coverage": interval_coverage(self.oof, level)}

    @property
    def most_chosen(self) -> str:
        """The feature the ``best-feature`` baseline picked most often ("?" if it never ran)."""
        return pd.Series(self.chosen).value_counts().index[0] if self.chosen else "?"

    def headline(self) -> dict[str, str]:
        """What the study can say, in words, best first (see :func:`topowire.predict.headline.headline`)."""
        from topowire.predict.headline import headline

        return headline(self)


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """R², MAE and Spearman of predictions ``p`` of ``y``."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, r2_score

    rho = spearmanr(y, p).statistic if np.ptp(p) > 0 and np.ptp(y) > 0 else float("nan")
    return {"r2": float(r2_score(y, p)), "mae": float(mean_absolute_error(y, p)), "spearman": float(rho)}


def permutation_importance(estimator, x: pd.DataFrame, y: np.ndarray, *, n_repeats: int = 3,
                           seed: int = 0) -> np.ndarray:
    """Each column's permutation importance: the fall in R² when that column alone is
    shuffled, the mean of ``n_repeats`` shuffles (sklearn's definition, scored by R²).

    Every shuffled copy of ``x`` is stacked into one table and predicted in one call: on a
    fold of a few dozen rows a forest's cost is per call, not per row (sklearn's
    ``permutation_importance`` calls ``predict`` once per column and shuffle).
    """
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(seed)
    values = x.to_numpy(dtype=float)
    n, k = values.shape
    stacked = np.tile(values, (n_repeats * k, 1))
    for block in range(n_repeats * k):
        column = block % k
        stacked[block * n:(block + 1) * n, column] = values[rng.permutation(n), column]
    predicted = estimator.predict(pd.DataFrame(stacked, columns=x.columns)).reshape(n_repeats * k, n)
    shuffled = np.array([r2_score(y, p) for p in predicted]).reshape(n_repeats, k)
    return r2_score(y, estimator.predict(x)) - shuffled.mean(axis=0)


def _held_out(estimator, x, y) -> float:
    """The per-fold score sklearn asks for: the count held out (the scores are pooled here)."""
    return float(len(y))


def cross_validate(table: pd.DataFrame, outcome: str, features: Sequence[str], *, groups: str | None = "family",
                   n_splits: int = 5, n_repeats: int = 3, seed: int = 0, n_estimators: int = 300,
                   importances: bool = True, extra_forests: dict[str, Sequence[str]] | None = None,
                   size: Sequence[str] | None = None, chance: float | None = None, model: str = "forest",
                   power: bool = True, progress: Callable[[int, int], None] | None = None) -> CVResult:
    """Score the predictor and the baselines (see the module docstring).

    Parameters
    ----------
    table : DataFrame
        One row per model (or per topology); ``topology_id`` identifies replicates.
    outcome : str
        Column to predict.
    features : sequence of str
        Columns the predictor uses.
    groups : str or None
        Column for leave-one-group-out CV (skipped with fewer than two groups).
    extra_forests : dict of str to sequence of str, optional
        More forests, by name, on other columns, scored on the same folds -- e.g.
        ``{"forest-graph": graph_features}`` to measure what extra features add.
    size : sequence of str, optional
        Columns of the size baselines (default: ``params``, else ``n_nodes`` and ``n_edges``;
        :func:`~topowire.predict.beyond.size_columns`). When they vary by no more than the
        matching tolerance, size was held fixed by design and no size baseline is fitted.
    chance : float, optional
        The task's chance level: an outcome at chance everywhere is refused.
    model : {"forest", "hgb"}
        The predictor: the random forest, or histogram gradient boosting (scored beside
        the forest).
    power : bool, default True
        Measure the design's power (with replicates; a few cheap forests per planted effect).
    progress : callable, optional
        ``progress(done, total)`` in cross-validations (one model under one scheme, all its
        folds), and the power measurement as one more.

    Raises
    ------
    DataError
        A missing or non-numeric column, too few topologies, or an outcome nothing can be
        learnt from (see :func:`check_outcome`).
    """
    if model not in PREDICTORS:
        raise ParameterError(f"unknown model {model!r}: expected one of {', '.join(PREDICTORS)}")
    features = list(features)
    check_table(table, outcome, features)
    data, ceiling = aggregate(table, outcome, features)
    if len(data) < n_splits:
        raise DataError(f"need at least {n_splits} topologies for {n_splits}-fold CV, got {len(data)}")
    plan = _plan(table, data, outcome, features, groups=groups, n_splits=n_splits, n_repeats=n_repeats, seed=seed,
                 extra_forests=extra_forests, size=size, chance=chance, model=model, has_ceiling=ceiling is not None)
    measure_power = power and ceiling is not None
    steps = len(plan.schemes) * sum(1 for c in plan.cols.values() if c) + measure_power
    done = 0
    if progress is not None:
        progress(done, steps)
    run = _Run()
    for scheme, splits in plan.schemes:
        for name, columns in plan.cols.items():
            if columns:
                _score_model(plan, run, scheme, splits, name, columns, seed=seed, n_estimators=n_estimators,
                             model=model, importances=importances)
                done += 1
                if progress is not None:
                    progress(done, steps)
    strength = design_power(table, outcome, features, plan.size, plan.design["matched"], seed=seed,
                            n_estimators=min(n_estimators, 50)) if measure_power else None
    if progress is not None and measure_power:
        progress(steps, steps)
    return CVResult(scores=run.scores(), oof=pd.concat(run.oof, ignore_index=True), importances=run.importance_table(
        features), ceiling=ceiling, n_rows=len(data), features=features, folds=pd.DataFrame(run.fold_rows),
        chosen=run.chosen, notes=plan.notes, outcome=outcome, model=model, size=plan.design, power=strength)


@dataclass
class _Plan:
    """What a cross-validation fits, on what and on which folds: each model's columns (empty:
    skipped, with a note saying why), the table ``x`` and outcome ``y`` per topology, the
    schemes' folds, the families, the size columns and how the design treats them."""

    cols: dict[str, list[str]]
    x: pd.DataFrame
    y: np.ndarray
    schemes: list[tuple[str, list]]
    family: np.ndarray | None
    size: list[str]
    design: dict
    features: list[str]
    n_splits: int
    notes: list[str]


def _plan(table: pd.DataFrame, data: pd.DataFrame, outcome: str, features: list[str], *, groups, n_splits, n_repeats,
          seed, extra_forests, size, chance, model, has_ceiling) -> _Plan:
    """The models to score beside the predictor, their columns and the schemes' folds, with a
    note for every baseline or scheme that cannot run (see :func:`cross_validate`)."""
    from sklearn.model_selection import LeaveOneGroupOut, RepeatedKFold

    notes = []
    if size is None:
        size = size_columns(data.columns)
        if not size:
            notes.append("size baselines skipped: no params, n_nodes or n_edges column "
                         "(name the size columns with --size-columns)")
    else:
        size = list(size)
        check_table(table, outcome, size)
    design = size_design(data, size)
    if design["matched"]:
        notes.append(f"size baselines not fitted: size held fixed by design ({', '.join(size)} within "
                     f"{design['spread']:.1%} of each other)")
    check_outcome(data[outcome].to_numpy(dtype=float), outcome, chance)
    if not has_ceiling:
        notes.append("noise ceiling skipped: one replicate per topology")
    if len(features) < 2:
        notes.append("best-feature skipped: the forest has a single feature")
    extra = {k: list(v) for k, v in (extra_forests or {}).items()}
    clash = set(extra) & set(MODELS)
    if clash:
        raise ParameterError(f"extra forest name(s) {', '.join(sorted(clash))} clash with the built-in models")
    check_table(table, outcome, [c for v in extra.values() for c in v])
    fixed = [] if design["matched"] else size
    wiring = [c for c in features if c not in set(size)]
    quadratic = list(QUADRATIC) if set(QUADRATIC) <= set(data.columns) else []
    if not quadratic:
        notes.append(f"quadratic-cl skipped: the table lacks {' or '.join(c for c in QUADRATIC if c not in data)}")
    if not size or not wiring:
        notes.append("beyond-size skipped: " + ("no size columns to go beyond" if not size else
                                                "no feature beside the size columns"))
        wiring = []
    cols = {**{m: features for m in dict.fromkeys(["forest", model])}, "mean": features[:1] or size[:1],
            "linear-size": fixed, "forest-size": fixed, "beyond-size": wiring, "quadratic-cl": quadratic,
            "best-feature": features if len(features) > 1 else [], **extra}
    x = data[list(dict.fromkeys(features + size + quadratic + [c for v in extra.values() for c in v]))]
    y = data[outcome].to_numpy(dtype=float)
    schemes = [("kfold", list(RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed % 2**32)
                              .split(x)))]
    if groups and groups in data.columns and data[groups].nunique() >= 2:
        schemes.append(("leave-one-family-out", list(LeaveOneGroupOut().split(x, y, data[groups]))))
    elif groups:
        notes.append(f"leave-one-{groups}-out skipped: " + (f"no column {groups!r}" if groups not in data.columns
                                                              else f"a single {groups}"))
    family = data[groups].to_numpy() if groups and groups in data.columns else None
    return _Plan(cols, x, y, schemes, family, size, design, features, n_splits, notes)


@dataclass
class _Run:
    """What the folds give, gathered as they are scored: per (scheme, model, repeat) the
    held-out truths and predictions to pool, per-fold scores, the predictor's out-of-fold
    rows and held-out importances, and the best-feature baseline's choices."""

    pooled: dict[tuple[str, str, int], tuple[list, list]] = field(default_factory=dict)
    fold_rows: list[dict] = field(default_factory=list)
    oof: list[pd.DataFrame] = field(default_factory=list)
    imps: list[np.ndarray] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)

    def scores(self) -> pd.DataFrame:
        """Scores of each repetition's pooled out-of-fold predictions: per-fold R² of small
        folds is unstable (a fold with little variance sends it towards minus infinity)."""
        return pd.DataFrame([{"scheme": scheme, "model": name, "repeat": repeat,
                              **scores(np.concatenate(ys), np.concatenate(ps))}
                             for (scheme, name, repeat), (ys, ps) in self.pooled.items()])

    def importance_table(self, features: list[str]) -> pd.DataFrame:
        imp = pd.DataFrame({"feature": features, "importance": np.mean(self.imps, axis=0) if self.imps else np.nan,
                            "std": np.std(self.imps, axis=0) if self.imps else np.nan})
        return imp.sort_values("importance", ascending=False).reset_index(drop=True)


def _score_model(plan: _Plan, run: _Run, scheme: str, splits: list, name: str, columns: list[str], *, seed: int,
                 n_estimators: int, model: str, importances: bool) -> None:
    """Fit model ``name`` on every fold of ``scheme`` (sklearn's ``cross_validate``) and
    record its held-out predictions in ``run``."""
    from sklearn.model_selection import cross_validate as sk_cross_validate

    extra = name not in MODELS
    unfitted = (BeyondSize(plan.size, plan.features, plan.design["matched"], seed, min(n_estimators, BEYOND_TREES))
                if name == "beyond-size" else make_model("forest" if extra else name, columns, seed, n_estimators))
    fitted = sk_cross_validate(unfitted, plan.x, plan.y, cv=splits, return_estimator=True, return_indices=True,
                               scoring=_held_out)
    for fold, (estimator, te) in enumerate(zip(fitted["estimator"], fitted["indices"]["test"])):
        repeat = fold // plan.n_splits if scheme == "kfold" else 0
        truth, pred = plan.y[te], estimator.predict(plan.x.iloc[te])
        if name == "beyond-size":  # scored on what size leaves
            truth, pred = residual_scores(estimator, plan.x.iloc[te], plan.y[te])
        ys, ps = run.pooled.setdefault((scheme, name, repeat), ([], []))
        ys.append(truth)
        ps.append(pred)
        if len(te) >= 2:
            run.fold_rows.append({"scheme": scheme, "model": name, "fold": fold, **scores(truth, pred)})
        if name == "best-feature" and scheme == "kfold":
            run.chosen.append(estimator.named_steps["select"].feature_)
        if name == model:
            run.oof.append(pd.DataFrame({"scheme": scheme, "fold": fold, "repeat": repeat, "row": te,
                                         "measured": plan.y[te], "predicted": pred,
                                         "family": plan.family[te] if plan.family is not None else ""}))
            # on the held-out folds of the first repeat: every row held out once
            if importances and scheme == "kfold" and fold < plan.n_splits and len(te) >= 2:
                run.imps.append(permutation_importance(estimator, plan.x.iloc[te][plan.features], plan.y[te],
                                                       n_repeats=3, seed=derive(seed, "importance", fold)))
