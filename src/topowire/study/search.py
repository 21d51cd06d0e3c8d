"""Choosing what to train next, on a study's store or on tables: :func:`suggest_table` and
:func:`suggest_population` put a run's results and a pool of candidates in the shape
:func:`topowire.predict.suggest.suggest` takes (features beside each, the task's chance
level), and say which topologies to train next."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from topowire.errors import DataError, ParameterError
from topowire.predict.suggest import Suggestion, suggest
from topowire.seeds import derive
from topowire.topology import Population

__all__ = ["suggest_table", "suggest_population", "search_study", "SEARCH_FILES"]


def suggest_table(results: pd.DataFrame, candidates: pd.DataFrame, outcome: str = "test_acc",
                  columns: str | list[str] | None = None, *, n_next: int = 16, acquisition: str = "ei",
                  explore: float = 1.0, seed: int = 0, n_estimators: int = 200) -> Suggestion:
    """The next ``n_next`` candidates to train, from tables.

    Parameters
    ----------
    results : DataFrame
        Trained results: ``topology_id``, the features and the outcome (one row per model or
        per topology).
    candidates : DataFrame
        The pool: ``topology_id`` and the same feature columns.
    outcome : str
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
    from topowire.study.fit import select_features

    columns = [c.strip() for c in columns.split(",") if c.strip()] if isinstance(columns, str) else columns
    if outcome not in results.columns:
        raise DataError(f"outcome column {outcome!r} is not in the results (columns: {', '.join(results.columns)})")
    used, _ = select_features(results, outcome, columns, exclude=["topology_id", "family", "replicate"])
    features = [c for c in used if c in candidates.columns]
    if not features:
        raise ParameterError(f"the candidates have none of the results' feature columns ({', '.join(used)})")
    return suggest(results, candidates, outcome, features, n_next, acquisition=acquisition, explore=explore, seed=seed,
                   n_estimators=n_estimators)


def suggest_population(population: Population, db: str | Path, run_id: str | None = None, *, n_next: int = 16,
                       acquisition: str = "ei", explore: float = 1.0, seed: int = 0,
                       n_estimators: int = 200) -> tuple[Suggestion, Population]:
    """The next ``n_next`` topologies of ``population`` to train, from what its run in ``db``
    has trained (test accuracy): the suggestion and the chosen topologies as a population
    ``topowire train`` takes. With no ``db`` yet, the first batch covers the graph features.
    Options as :func:`suggest_table`."""
    from topowire.study.load import model_features, study_table
    from topowire.train.spec import RunSpec

    topologies = list({t.id: t for t in population}.values())
    by_id = {t.id: t for t in topologies}
    run, results = _run_results(Path(db), run_id)
    if results.empty:  # nothing trained yet: a first batch that covers the graph features
        from topowire.features import GROUPS, feature_table

        pool = feature_table(topologies, list(GROUPS)).rename_axis("topology_id").reset_index()
        out = suggest(pool.iloc[:0].assign(test_acc=[]), pool, "test_acc", [c for c in pool if c != "topology_id"],
                      n_next, seed=seed)
    else:
        spec = RunSpec.from_record(run)
        if not set(results["topology_id"]) & set(by_id):
            raise DataError(f"run {run['run_id']} in {db} trained none of this population's topologies")
        features = model_features(topologies, None, spec.arch, seed=spec.train.seed)
        trained = study_table(results[results["topology_id"].isin(by_id)].assign(
            family=lambda r: r["topology_id"].map(lambda i: by_id[i].family)), features)
        out = suggest(trained, features.rename_axis("topology_id").reset_index(), "test_acc", list(features.columns),
                      n_next, acquisition=acquisition, explore=explore, seed=seed, n_estimators=n_estimators,
                      chance=spec.task.spec.chance)
    return out, Population(tuple(by_id[i] for i in out.chosen["topology_id"]), recipe=population.recipe,
                           seed=population.seed)


#: The files a search folder holds.
SEARCH_FILES = ("pool.jsonl", "runs.db", "runs.db-wal", "runs.db-shm", "rounds.jsonl", "search.csv", "search.png",
                "summary.json")


def _rounds(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _run_results(db: Path, run_id: str | None) -> tuple[dict | None, pd.DataFrame]:
    """The run's record and its results in ``db`` (the store's only run when ``run_id`` is
    None); no record and an empty frame when there is no store or no such run yet."""
    from topowire.store import open_existing

    if not db.exists():
        return None, pd.DataFrame()
    with open_existing(db) as store:
        if run_id is not None and run_id not in set(store.runs()["run_id"]):
            return None, pd.DataFrame()
        run = store.run(run_id)
        return run, store.results(run["run_id"])


def _measured(db: Path, run_id: str) -> pd.DataFrame:
    """Each topology's mean test accuracy and its models stored so far (``ok`` or not)."""
    results = _run_results(db, run_id)[1]
    if results.empty:
        return pd.DataFrame(columns=["test_acc", "models"])
    ok = results[results["status"] == "ok"].groupby("topology_id")["test_acc"].mean()
    return pd.DataFrame({"test_acc": ok, "models": results.groupby("topology_id").size()})


def search_study(recipe, out: str | Path, *, budget: int, batch: int, config=None, acquisition: str = "ei",
                 explore: float = 1.0, log=print, progress=None, executor="local") -> dict:
    """Search a recipe's draw for its best wiring: train a first batch that covers the
    features, then suggest, train and refit, ``batch`` topologies at a time, until ``budget``
    are trained -- resumable: run again, it trains only what is missing.

    Writes ``pool.jsonl`` (the candidates), ``runs.db``, ``rounds.jsonl`` (each round's picks,
    with what the forest predicted), ``search.csv`` (every topology trained, in order, with
    its predicted and measured accuracy and the best so far), ``search.png`` (the best found
    against trainings) and ``summary.json``; returns the summary.
    """
    import json

    from topowire import checks
    from topowire._io import atomic_open, check_output_folder, mark_folder
    from topowire.study.config import StudyConfig, validate
    from topowire.topology import read_population, sample_population, write_population
    from topowire.train import train_population

    config = config or StudyConfig()
    task, spec = validate(recipe, config)  # before anything is written
    out = Path(out)
    check_output_folder(out, kind="search")
    pool = sample_population(recipe, config.seed)
    budget = checks.integer("budget", budget, 1, len({t.id for t in pool}),
                            what=f" (the pool holds {len({t.id for t in pool})} topologies)")
    batch = checks.integer("batch", batch, 1, budget)
    out.mkdir(parents=True, exist_ok=True)
    mark_folder(out, "search", SEARCH_FILES)
    if (out / "pool.jsonl").exists() and read_population(out / "pool.jsonl").ids != pool.ids:
        raise ParameterError(f"{out} holds the search of another pool: use another folder")
    write_population(pool, out / "pool.jsonl")
    db, rid, reps = out / "runs.db", spec.run_id(task), spec.train.replicates
    by_id = {t.id: t for t in pool}
    rounds = _rounds(out / "rounds.jsonl")

    def train(topologies) -> pd.DataFrame:
        train_population(list(topologies), spec.arch, task, spec.train, store=db, executor=executor,
                         progress=progress and (lambda d, t: progress("training", d, t)))
        return _measured(db, rid)

    measured = _measured(db, rid)
    while True:
        partial = [by_id[i] for i in measured.index if measured.loc[i, "models"] < reps]
        if partial:  # a round cut short: finish its topologies first
            measured = train(partial)
            continue
        if len(measured) >= budget:
            break
        picked, chosen = suggest_population(pool, db, rid, n_next=min(batch, budget - len(measured)),
                                            acquisition=acquisition, explore=explore,
                                            seed=derive(config.seed or 0, "search", len(rounds)))
        rounds.append({"round": len(rounds) + 1, **{c: picked.chosen[c].tolist() for c in
                                                     ("topology_id", "predicted", "lower", "upper")}})
        with atomic_open(out / "rounds.jsonl") as fh:
            fh.write("".join(json.dumps(r, allow_nan=True) + "\n" for r in rounds))
        measured = train(chosen)
        best = measured["test_acc"].idxmax()
        log(f"round {len(rounds)}: {len(measured)}/{budget} topologies trained; best so far {best} "
            f"({measured.loc[best, 'test_acc']:.4f})")
    return _search_summary(out, rounds, measured, budget)


def _search_summary(out: Path, rounds: list[dict], measured: pd.DataFrame, budget: int) -> dict:
    """``search.csv``, ``search.png`` and ``summary.json`` of a finished search."""
    import json

    from topowire._io import atomic_open, write_table

    rows = [{"topology_id": t, "round": r["round"], "predicted": p} for r in rounds
            for t, p in zip(r["topology_id"], r["predicted"]) if t in measured.index]
    table = pd.DataFrame(rows).drop_duplicates("topology_id").assign(
        measured=lambda f: f["topology_id"].map(measured["test_acc"]))
    table["best_so_far"] = table["measured"].cummax()
    table.index = pd.RangeIndex(1, len(table) + 1, name="trained")
    write_table(table, out / "search.csv")
    _draw_search(table, out / "search.png")
    best = table.sort_values("measured", ascending=False).head(5)
    summary = {"trained": f"{len(table)} of a budget of {budget} topologies, in {len(rounds)} rounds",
               "best": [{"topology_id": r.topology_id, "measured": round(float(r.measured), 4),
                         "predicted": None if pd.isna(r.predicted) else round(float(r.predicted), 4),
                         "round": int(r.round)} for r in best.itertuples()]}
    with atomic_open(out / "summary.json") as fh:
        json.dump(summary, fh, indent=2)
    return summary


def _draw_search(table: pd.DataFrame, path: Path) -> None:
    """The best measured accuracy against trainings, beside random sampling's expectation
    over the same measured topologies (the mean best of m drawn without replacement)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.special import gammaln

    values = np.sort(table["measured"].dropna().to_numpy())
    n = len(values)
    # E[max of m of n drawn without replacement] = sum_i v_(i) C(i, m - 1) / C(n, m), values ascending (0-based i)
    def log_comb(a, b):
        return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)

    i = np.arange(n)
    expected = [float((values[m - 1:] * np.exp(log_comb(i[m - 1:], m - 1) - log_comb(n, m))).sum())
                for m in range(1, n + 1)]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.plot(table.index, table["best_so_far"], marker="o", ms=3, label="suggest (measured)")
    ax.plot(range(1, n + 1), expected, ls="--", label="random order of the same topologies (expected)")
    ax.set_xlabel("topologies trained")
    ax.set_ylabel("best mean test accuracy so far")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
