"""Beyond graph features: do cheap proxies of the trained models predict their accuracy?

On a finished study (the folder ``topowire run`` writes), the script measures the
init-time proxies (loss and gradient norm at initialisation, :mod:`topowire.train.proxies`)
and the early-training proxies (test loss and accuracy after two fractions of the training
budget, trained packed) of every topology's replicate-0 model, and cross-validates, on the
same folds, forests on: graph features; + init proxies; + early proxies at each fraction;
and each early proxy set alone -- against the noise ceiling, with the compute each costs
(seconds here, and as a share of training the same replicate-0 models with the whole
budget, timed in the same run).

    python analysis/proxies.py STUDY_DIR [--fractions 0.03125,0.125] [--name default]

Writes ``analysis/results/proxies/<name>.csv`` and ``<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from topowire.data import make_task
from topowire.predict import cross_validate
from topowire.store import open_existing
from topowire.study import load_study
from topowire.train import TrainConfig
from topowire.train.proxies import INIT_PROXIES, early_proxies, init_proxies

OUT = Path(__file__).parent / "results" / "proxies"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--fractions", default="0.03125,0.125")
    parser.add_argument("--name", default="default")
    parser.add_argument("--trees", type=int, default=300)
    args = parser.parse_args()
    study = load_study(args.study / "runs.db")
    with open_existing(args.study / "runs.db") as store:
        config = TrainConfig.from_dict(store.run(study.run_id)["config"])
    task = make_task(study.task, seed=study.train_seed)
    pop = list(study.topologies.values())
    graph = [c for c in study.features.columns if c != "params"] + ["params"]
    cost, table = {}, study.table
    t0 = time.perf_counter()
    table = table.join(init_proxies(pop, study.arch, task, seed=study.train_seed), on="topology_id")
    cost["init"] = time.perf_counter() - t0
    sets = {"graph": graph, "graph+init": graph + list(INIT_PROXIES)}
    for f in (float(v) for v in args.fractions.split(",")):
        t0 = time.perf_counter()
        early = early_proxies(pop, study.arch, task, config, f)
        cost[f"early{f:g}"] = time.perf_counter() - t0
        table = table.join(early, on="topology_id")
        sets[f"graph+init+early{f:g}"] = sets["graph+init"] + list(early.columns)
        sets[f"early{f:g} alone"] = list(early.columns)
    everything = list(dict.fromkeys(c for cols in sets.values() for c in cols))
    cv = cross_validate(table, "test_acc", everything, extra_forests={k: v for k, v in sets.items()},
                        n_estimators=args.trees, importances=False)
    t = cv.table().set_index(["scheme", "model"]).loc["kfold"]
    t0 = time.perf_counter()  # the full budget for replicate 0, timed beside the proxies
    early_proxies(pop, study.arch, task, config, 1.0)
    trained = time.perf_counter() - t0
    rows = []
    for name in sets:
        extra = [k for k in cost if k in name.split("+") or name.startswith(k)]
        seconds = sum(cost[k] for k in extra)
        rows.append({"features": name, "r2": t.loc[name, "r2"], "r2_fold_sd": t.loc[name, "r2_fold_sd"],
                     "spearman": t.loc[name, "spearman"], "spearman_fold_sd": t.loc[name, "spearman_fold_sd"],
                     "share_of_ceiling": t.loc[name, "r2"] / cv.ceiling["ceiling"],
                     "proxy_seconds": round(seconds, 1), "share_of_training": seconds / trained})
    frame = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / f"{args.name}.csv", index=False)
    (OUT / f"{args.name}.json").write_text(json.dumps({
        "study": str(args.study), "run_id": study.run_id, "task": study.task, "arch": study.arch.to_dict(),
        "ceiling": cv.ceiling, "training_seconds": trained, "proxy_seconds": cost,
        "size_only_r2": {m: t.loc[m, "r2"] for m in ("linear-size", "forest-size")},
        "best_feature_r2": t.loc["best-feature", "r2"], "torch": torch.__version__,
        "threads": torch.get_num_threads()}, indent=2, default=float))
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"noise ceiling {cv.ceiling['ceiling']:.3f}; full training of the same models {trained:.0f} s")


if __name__ == "__main__":
    main()
