"""Does `topowire suggest` find the best wiring in fewer trainings than random sampling?

Replays a search on a finished study: starting from nothing, ``--batch`` topologies at a
time, either as `suggest` chooses them (told the measured results of what it chose) or drawn
uniformly, until every topology is trained. For each of ``--seeds`` seeds it records the
trainings needed to reach a top-1% and a top-5% topology (by the study's measured mean) and
the simple regret (best measured mean minus the best found) after ``--budget`` trainings;
medians and quartiles side by side, and a figure of the best found against trainings.

    topowire run -o study/ && python bench/bench_search.py --study study/   # the default study
    python bench/bench_search.py --table t.csv --target acc --columns density,avg_clustering

A study folder (what `topowire run` writes) gives its results (``runs.db``) beside its
topologies' features (``features.csv``); the predictor's columns are the graph features.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from topowire.predict.suggest import replay, trainings_to_reach

ROOT = Path(__file__).resolve().parents[1]


def study_table(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    """A study folder's per-model results (``ok``) with its topologies' graph features."""
    from topowire.features import list_features
    from topowire.store import Store

    with Store(folder / "runs.db", readonly=True) as store:
        results = store.results()
    features = pd.read_csv(folder / "features.csv", index_col="id")
    graph = set(list_features().query("needs == 'graph'")["name"])
    names = [c for c in features.columns if c in graph]
    results = results[results["status"] == "ok"]
    return results[["topology_id", "test_acc"]].join(features[names], on="topology_id"), names


def regret(order, table: pd.DataFrame, target: str, budget: int) -> float:
    means = table.groupby("topology_id")[target].mean()
    return float(means.max() - means[list(order[:budget])].max())


def best_curve(order, table: pd.DataFrame, target: str) -> np.ndarray:
    means = table.groupby("topology_id")[target].mean()
    return np.maximum.accumulate(means[list(order)].to_numpy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, help="a study folder (topowire run -o DIR)")
    ap.add_argument("--table", type=Path, help="or a finished study's table (with --target and --columns)")
    ap.add_argument("--target", default="test_acc")
    ap.add_argument("--columns", help="feature columns of --table (comma-separated)")
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--budget", type=int, default=20, help="trainings after which the regret is taken")
    ap.add_argument("--seeds", type=int, default=21)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--figure", type=Path, default=ROOT / "bench" / "results" / "search.png")
    args = ap.parse_args()
    if (args.study is None) == (args.table is None):
        raise SystemExit("error: give --study DIR or --table FILE")
    if args.study is not None:
        table, features = study_table(args.study)
        name = f"the study in {args.study}"
    else:
        table, features, name = pd.read_csv(args.table), args.columns.split(","), str(args.table)
    n = table["topology_id"].nunique()
    print(f"{name}: {n} topologies; batches of {args.batch}; {args.seeds} seeds; "
          f"{platform.processor() or platform.machine()}")
    rows, curves = {}, {}
    t0 = time.perf_counter()
    for strategy in ("suggest", "random"):
        found = {"top 1%": [], "top 5%": [], f"regret after {args.budget}": []}
        curves[strategy] = []
        for seed in range(args.seeds):
            order = replay(table, args.target, features, n, args.batch, strategy=strategy, seed=seed,
                           n_estimators=args.trees)
            found["top 1%"].append(trainings_to_reach(order, table, args.target, 0.01))
            found["top 5%"].append(trainings_to_reach(order, table, args.target, 0.05))
            found[f"regret after {args.budget}"].append(regret(order, table, args.target, args.budget))
            curves[strategy].append(best_curve(order, table, args.target))
        rows[strategy] = {k: f"{np.median(v):.4g} [{np.quantile(v, 0.25):.4g}, {np.quantile(v, 0.75):.4g}]"
                          for k, v in found.items()}
        rows[strategy]["_median5"] = float(np.median(found["top 5%"]))
    ratio = rows["suggest"].pop("_median5") / rows["random"].pop("_median5")
    frame = pd.DataFrame(rows).T
    print("| strategy | " + " | ".join(frame.columns) + " |\n|---|" + "---|" * len(frame.columns))
    for strategy, row in frame.iterrows():
        print(f"| {strategy} | " + " | ".join(row) + " |")
    print(f"trainings to a top-5% topology, suggest / random (medians): {ratio:.2f} (goal <= 0.5); "
          f"{time.perf_counter() - t0:.0f} s")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for strategy, c in curves.items():
        ax.plot(np.arange(1, n + 1), np.median(np.stack(c), 0), label=f"{strategy} (median of {args.seeds} seeds)")
    ax.set_xlabel("topologies trained")
    ax.set_ylabel(f"best mean {args.target} found")
    ax.set_title(name, fontsize=8)
    ax.legend()
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
