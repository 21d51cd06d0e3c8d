"""Choosing what to train next, on a study's store or on tables: :func:`suggest_table` and
:func:`suggest_population` put a run's results and a pool of candidates in the shape
:func:`topowire.predict.suggest.suggest` takes (features beside each, the task's chance
level), and say which topologies to train next."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from topowire.errors import DataError, ParameterError
from topowire.predict.suggest import Suggestion, suggest
from topowire.topology import Population

__all__ = ["suggest_table", "suggest_population"]


def suggest_table(results: pd.DataFrame, candidates: pd.DataFrame, target: str = "test_acc",
                  columns: str | list[str] | None = None, *, n_next: int = 16, acquisition: str = "ei",
                  explore: float = 1.0, seed: int = 0, n_estimators: int = 200) -> Suggestion:
    """The next ``n_next`` candidates to train, from tables.

    Parameters
    ----------
    results : DataFrame
        Trained results: ``topology_id``, the features and the target (one row per model or
        per topology).
    candidates : DataFrame
        The pool: ``topology_id`` and the same feature columns.
    target : str
        The column to maximise.
    columns : str or list of str, optional
        Feature columns used beside the known features both tables have.
    n_next : int
        Topologies to choose (``-k``).
    acquisition : {"ei", "ucb"}
        Expected improvement over the best mean measured, or an upper confidence bound.
    explore : float
        Weight of the predictive spread (0: the forest's means alone).
    seed : int
        Seed of the forest (and of the first batch when nothing is trained).
    n_estimators : int
        Trees in the forest.
    """
    from topowire.pipeline import select_features

    columns = [c.strip() for c in columns.split(",") if c.strip()] if isinstance(columns, str) else columns
    if target not in results.columns:
        raise DataError(f"target column {target!r} is not in the results (columns: {', '.join(results.columns)})")
    used, _ = select_features(results, target, columns, exclude=["topology_id", "family", "replicate"])
    features = [c for c in used if c in candidates.columns]
    if not features:
        raise ParameterError(f"the candidates have none of the results' feature columns ({', '.join(used)})")
    return suggest(results, candidates, target, features, n_next, acquisition=acquisition, explore=explore, seed=seed,
                   n_estimators=n_estimators)


def suggest_population(population: Population, db: str | Path, run_id: str | None = None, *, n_next: int = 16,
                       acquisition: str = "ei", explore: float = 1.0, seed: int = 0,
                       n_estimators: int = 200) -> tuple[Suggestion, Population]:
    """The next ``n_next`` topologies of ``population`` to train, from what its run in ``db``
    has trained (test accuracy): the suggestion and the chosen topologies as a population
    ``topowire train`` takes. With no ``db`` yet, the first batch covers the graph features.
    Options as :func:`suggest_table`."""
    from topowire.pipeline import model_features, study_table
    from topowire.store import open_existing
    from topowire.train.spec import RunSpec

    topologies = list({t.id: t for t in population}.values())
    by_id = {t.id: t for t in topologies}
    if not Path(db).exists():
        from topowire.features import GROUPS, feature_table

        pool = feature_table(topologies, list(GROUPS)).rename_axis("topology_id").reset_index()
        out = suggest(pool.iloc[:0].assign(test_acc=[]), pool, "test_acc", [c for c in pool if c != "topology_id"],
                      n_next, seed=seed)
        return out, Population(tuple(by_id[i] for i in out.chosen["topology_id"]), recipe=population.recipe,
                               seed=population.seed)
    with open_existing(db) as store:
        run = store.run(run_id)
        results = store.results(run["run_id"])
    spec = RunSpec.from_record(run)
    if not set(results["topology_id"]) & {t.id for t in topologies}:
        raise DataError(f"run {run['run_id']} in {db} trained none of this population's topologies")
    features = model_features(topologies, None, spec.arch, seed=spec.train.seed)
    trained = study_table(results[results["topology_id"].isin(by_id)].assign(
        family=lambda r: r["topology_id"].map(lambda i: by_id[i].family)), features)
    names = list(features.columns)
    out = suggest(trained, features.rename_axis("topology_id").reset_index(), "test_acc", names, n_next,
                  acquisition=acquisition, explore=explore, seed=seed, n_estimators=n_estimators,
                  chance=spec.task.spec.chance)
    chosen = Population(tuple(by_id[i] for i in out.chosen["topology_id"]), recipe=population.recipe,
                        seed=population.seed)
    return out, chosen
