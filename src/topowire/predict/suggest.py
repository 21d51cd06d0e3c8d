"""Which topologies to train next: a forest's predictive spread, an acquisition function and
a batch that does not crowd one spot (ask/tell, one step at a time).

From what is trained (one row per model; a topology's outcome is the mean over its
replicates) and a pool of candidates described by the same features:

* the forest's **predictive distribution** for a candidate is the mean and spread of its
  trees' predictions (each tree fitted on a bootstrap of the trained topologies), its
  variance plus the seed noise of a mean of ``r`` replicates (the pooled within-topology
  variance over ``r``, the replicates a topology had): what the candidate would measure;
* the **acquisition** is expected improvement over the best measured mean (``ei``, the
  default) or an upper confidence bound ``mean + explore * sd`` (``ucb``); ``explore``
  scales the spread in either (0: exploit the forest's means alone);
* the **batch** of ``k`` is chosen greedily, every pick damping the acquisition of the
  candidates near it in standardised feature space (local penalisation, by a Gaussian of
  the pool's median nearest-neighbour distance), so a batch spreads over the promising
  regions instead of taking k near-duplicates;
* with nothing trained, the first batch **covers** the features: a seeded start, then each
  pick the candidate farthest from those chosen (maximin).

Everything is deterministic for a seed. The default (``ei``, ``explore = 1``) is the one the
planted-table simulation of ``tests/predict/test_suggest.py`` and ``bench/bench_search.py``
compare against random sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from topowire import checks
from topowire.errors import DataError, ParameterError
from topowire.predict.table import check_finite, check_outcome
from topowire.seeds import derive

__all__ = ["ACQUISITIONS", "suggest", "cover", "predictive", "acquisition_score", "penalised_batch", "Suggestion",
           "replay", "trainings_to_reach"]

#: The acquisition functions.
ACQUISITIONS = ("ei", "ucb")
checks.declare("acquisition", checks.Domain("choice", choices=ACQUISITIONS))
#: The two-sided normal quantile of the 90% interval written beside each prediction.
Z90 = 1.6448536269514722


@dataclass(frozen=True)
class Suggestion:
    """The chosen candidates and how they were chosen.

    Attributes
    ----------
    chosen : DataFrame
        The chosen candidates' rows (ids and features kept) in the order picked, with
        ``predicted``, ``sd``, ``lower``, ``upper`` (a 90% normal interval),
        ``acquisition`` (its value when picked) and ``pick`` (1, 2, ...).
    best : float or None
        The best measured topology mean so far (None: nothing trained).
    notes : list of str
        What was done, in words (the first batch covers the features; the seed noise used).
    """

    chosen: pd.DataFrame
    best: float | None
    notes: list[str]


def _standardised(*frames: pd.DataFrame) -> list[np.ndarray]:
    """The frames' features z-scored together (medians imputed; constant columns dropped)."""
    allx = pd.concat(frames, ignore_index=True).astype(float)
    allx = allx.fillna(allx.median())
    sd = allx.std(ddof=0)
    keep = sd > 0
    z = ((allx.loc[:, keep] - allx.mean()[keep]) / sd[keep]).to_numpy()
    out, start = [], 0
    for f in frames:
        out.append(z[start:start + len(f)])
        start += len(f)
    return out


def cover(x: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """``k`` rows of ``x`` spread over it: a seeded first row, then each time the row
    farthest from those chosen (maximin; ties to the lower index)."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(x)))]
    nearest = np.linalg.norm(x - x[chosen[0]], axis=1)
    while len(chosen) < k:
        nearest[chosen] = -1.0
        i = int(np.argmax(nearest))
        chosen.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[i], axis=1))
    return chosen


def predictive(x_train: np.ndarray, y_train: np.ndarray, x_pool: np.ndarray, *, seed: int = 0,
               n_estimators: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (sd) of a random forest's trees' predictions for the pool."""
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=1, random_state=seed % 2**32,
                                   n_jobs=1).fit(x_train, y_train)
    trees = np.stack([t.predict(x_pool) for t in forest.estimators_])
    return trees.mean(0), trees.std(0)


def acquisition_score(mean: np.ndarray, sd: np.ndarray, best: float, kind: str = "ei",
                      explore: float = 1.0) -> np.ndarray:
    """Expected improvement over ``best`` (``ei``) or ``mean + explore * sd`` (``ucb``),
    with the spread scaled by ``explore``; ties go to the higher mean."""
    from scipy.stats import norm

    s = explore * sd
    if kind == "ucb":
        score = mean + s
        score = score - score.min()
    else:
        gain = mean - best
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(s > 0, gain / s, 0.0)
        score = np.where(s > 0, gain * norm.cdf(z) + s * norm.pdf(z), np.maximum(gain, 0.0))
    rank = np.argsort(np.argsort(mean, kind="stable"), kind="stable") / max(len(mean), 1)
    return score + 1e-12 * (1 + rank)


def penalised_batch(score: np.ndarray, x: np.ndarray, k: int) -> list[int]:
    """``k`` picks by ``score``, each damping the scores near it by ``1 - exp(-d^2 / 2 l^2)``
    (``l``: the median distance from a row of ``x`` to its nearest other row)."""
    from scipy.spatial import cKDTree

    length = float(np.median(cKDTree(x).query(x, k=2)[0][:, 1])) if len(x) > 1 else 1.0
    length = length if length > 0 else 1.0
    score, chosen = score.astype(float).copy(), []
    for _ in range(k):
        score[chosen] = -np.inf
        i = int(np.argmax(score))
        chosen.append(i)
        d2 = ((x - x[i]) ** 2).sum(1)
        score = np.where(np.isfinite(score), score * (1 - np.exp(-d2 / (2 * length**2))), score)
    return chosen


def _seed_variance(results: pd.DataFrame, outcome: str) -> tuple[float, float]:
    """The pooled within-topology variance of the outcome and the median replicates."""
    g = results.groupby("topology_id")[outcome]
    counts = g.size()
    within = g.var(ddof=1).dropna()
    dof = (counts[within.index] - 1).sum()
    pooled = float((within * (counts[within.index] - 1)).sum() / dof) if dof > 0 else 0.0
    return pooled, float(counts.median())


def suggest(results: pd.DataFrame, candidates: pd.DataFrame, outcome: str, features: Sequence[str], k: int, *,
            acquisition: str = "ei", explore: float = 1.0, seed: int = 0, n_estimators: int = 200,
            chance: float | None = None) -> Suggestion:
    """Choose the next ``k`` candidates to train (see the module docstring).

    Parameters
    ----------
    results : DataFrame
        What is trained: ``topology_id``, the ``outcome`` and the ``features``, one row per
        model (replicates averaged per topology). May be empty: the first batch then covers
        the features.
    candidates : DataFrame
        The pool: ``topology_id`` and the ``features``; candidates already in ``results``
        are left out.
    outcome : str
        The outcome to maximise.
    features : sequence of str
        The feature columns both tables have.
    k : int
        How many to choose.
    acquisition : {"ei", "ucb"}
        The acquisition function: expected improvement, or an upper confidence bound.
    explore : float
        The weight of the predictive spread (0: the forest's means alone).
    seed : int
        Seed of the forest and of the first batch's start.
    n_estimators : int
        Trees in the forest.
    chance : float, optional
        The task's chance level: an outcome there everywhere is refused.

    Raises
    ------
    ParameterError, DataError
        ``k`` larger than the pool (once trained candidates are left out), no feature,
        an outcome that is constant or at chance.
    """
    acquisition, explore = checks.check("acquisition", acquisition), checks.check("explore", explore)
    features = list(features)
    if not features:
        raise ParameterError("the results and the candidates have no feature column in common")
    for name, frame in (("candidates", candidates), ("results", results)):
        if "topology_id" not in frame.columns:
            raise DataError(f"the {name} table has no topology_id column")
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise DataError(f"the {name} table lacks the feature column(s) {', '.join(missing)}")
    trained = set(results["topology_id"]) if len(results) else set()
    pool = candidates[~candidates["topology_id"].isin(trained)].drop_duplicates("topology_id").reset_index(drop=True)
    k = checks.integer("k", checks.check("n_next", k), 1, max(1, len(pool)),
                       what=f" (the pool holds {len(pool)} untrained candidates)")
    check_finite(pool, features)
    if not len(results):
        x_pool, = _standardised(pool[features])
        picks = cover(x_pool, k, seed)
        chosen = pool.iloc[picks].assign(predicted=np.nan, sd=np.nan, lower=np.nan, upper=np.nan,
                                          acquisition=np.nan, pick=np.arange(1, k + 1))
        note = f"nothing trained yet: {k} candidates chosen to cover the {len(features)} features (maximin)"
        return Suggestion(chosen.reset_index(drop=True), None, [note])
    check_finite(results, [outcome, *features])
    means = results.groupby("topology_id", sort=False).agg({outcome: "mean", **{f: "first" for f in features}})
    check_outcome(means[outcome].to_numpy(), outcome, chance)
    x_train, x_pool = _standardised(means[features], pool[features])
    mean, spread = predictive(x_train, means[outcome].to_numpy(float), x_pool, seed=seed, n_estimators=n_estimators)
    noise, replicates = _seed_variance(results, outcome)
    sd = np.sqrt(spread**2 + noise / replicates)
    best = float(means[outcome].max())
    score = acquisition_score(mean, sd, best, acquisition, explore)
    picks = penalised_batch(score, x_pool, k)
    chosen = pool.iloc[picks].assign(predicted=mean[picks], sd=sd[picks], lower=mean[picks] - Z90 * sd[picks],
                                      upper=mean[picks] + Z90 * sd[picks], acquisition=score[picks],
                                      pick=np.arange(1, k + 1))
    notes = [f"{len(means)} topologies trained ({len(results)} models), best mean {outcome} {best:.4g}; "
             f"{len(pool)} candidates; {acquisition} with explore {explore:g}",
             f"seed noise: sd {np.sqrt(noise):.3g} per model, {np.sqrt(noise / replicates):.3g} for a mean of "
             f"{replicates:g} replicates (in every candidate's sd)"]
    return Suggestion(chosen.reset_index(drop=True), best, notes)


def replay(table: pd.DataFrame, outcome: str, features: Sequence[str], budget: int, k: int, *,
           strategy: str = "suggest", seed: int = 0, n_estimators: int = 100, **options) -> list[str]:
    """The order in which a search would train the topologies of a finished study.

    ``table`` holds every topology's rows (features and the measured ``outcome``); the search
    starts with nothing trained and, ``k`` at a time until ``budget`` topologies are, either
    asks :func:`suggest` (``strategy="suggest"``) and is told the chosen topologies' rows,
    or draws ``k`` untrained topologies uniformly (``"random"``). Returns the topology ids
    in the order trained. Deterministic for a seed.
    """
    checks.choice("strategy", strategy, ("suggest", "random"))
    ids = list(dict.fromkeys(table["topology_id"]))
    budget = checks.integer("budget", budget, 1, len(ids))
    pool = table.drop_duplicates("topology_id")[["topology_id", *features]]
    rng, order = np.random.default_rng(seed), []
    while len(order) < budget:
        batch = min(k, budget - len(order))
        if strategy == "random":
            left = [i for i in ids if i not in set(order)]
            order += [left[j] for j in rng.choice(len(left), size=batch, replace=False)]
            continue
        trained = table[table["topology_id"].isin(order)]
        picked = suggest(trained, pool, outcome, features, batch, seed=derive(seed, "search", len(order)),
                         n_estimators=n_estimators, **options)
        order += list(picked.chosen["topology_id"])
    return order


def trainings_to_reach(order: Sequence[str], table: pd.DataFrame, outcome: str, top: float) -> int | None:
    """How many trainings of ``order`` it took to train a topology in the top ``top`` share
    (by its mean ``outcome`` in ``table``); None if none was."""
    means = table.groupby("topology_id")[outcome].mean()
    cut = means.quantile(1 - top)
    best = set(means[means >= cut].index)
    return next((i + 1 for i, t in enumerate(order) if t in best), None)
