"""Choosing ``topowire run``'s embedded default by measurement (issue: predictions).

Each design is a population recipe, a task, an arch and a training budget. For each, the
script samples the population, trains every topology with 3 replicate seeds (packed, CPU),
and cross-validates the forest beside the baselines. It records what decides whether the
design can show a wiring effect: mean accuracy (neither saturated nor at chance), the noise
ceiling (share of the averaged target's variance that lies between topologies), the
forest's R² and its share of the ceiling, the size-only R², and the wall time.

    python analysis/default_study_design.py [--designs NAME,...] [--smoke]

Results are appended to ``analysis/results/default_study/designs.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path

import torch

from topowire.compiler import Arch
from topowire.data import make_task
from topowire.predict import cross_validate
from topowire.study import model_features, study_table
from topowire.topology import parse_recipe, sample_population
from topowire.train import TrainConfig, train_population

OUT = Path(__file__).parent / "results" / "default_study"


def _recipe(n: str, er_p: str, ws_k: str, ba_m: str, count: int) -> str:
    return f"""
[population]
name = "design"
seed = 0
[[family]]
kind = "er"
count = {count}
n = {n}
p = {er_p}
[[family]]
kind = "ws"
count = {count}
n = {n}
k = {ws_k}
p = [0.0, 1.0]
[[family]]
kind = "ba"
count = {count}
n = {n}
m = {ba_m}
"""


QUICK = _recipe("[16, 48]", "[0.08, 0.3]", "{ choices = [2, 4, 6] }", "[1, 3]", 25)
SMALL = _recipe("[8, 24]", "[0.05, 0.4]", "{ choices = [2, 4] }", "[1, 3]", 25)
WIDE = _recipe("[6, 32]", "[0.03, 0.5]", "{ choices = [2, 4, 6] }", "[1, 4]", 25)

DESIGNS = {
    # the old default: saturated
    "quick-reber-gru-6ep": (QUICK, "reber", Arch("gru"), TrainConfig(epochs=6, replicates=3), 4000),
    "small-reber-gru-2ep": (SMALL, "reber", Arch("gru"), TrainConfig(epochs=2, replicates=3), 2000),
    "small-reber-tanh-3ep": (SMALL, "reber", Arch("rnn-tanh"), TrainConfig(epochs=3, replicates=3), 2000),
    "small-embedded-gru-3ep": (SMALL, "embedded-reber", Arch("gru"), TrainConfig(epochs=3, replicates=3), 2000),
    "quick-embedded-gru-3ep": (QUICK, "embedded-reber", Arch("gru"), TrainConfig(epochs=3, replicates=3), 2000),
    "small-reber-tanh-8ep": (SMALL, "reber", Arch("rnn-tanh"), TrainConfig(epochs=8, replicates=3), 4000),
    "small-reber-gru-8ep": (SMALL, "reber", Arch("gru"), TrainConfig(epochs=8, replicates=3), 4000),
    "wide-reber-tanh-8ep": (WIDE, "reber", Arch("rnn-tanh"), TrainConfig(epochs=8, replicates=3), 4000),
    "wide-reber-gru-6ep": (WIDE, "reber", Arch("gru"), TrainConfig(epochs=6, replicates=3), 4000),
}


def measure(name: str, smoke: bool = False) -> dict:
    text, task_name, arch, config, n_train = DESIGNS[name]
    if smoke:
        text, config, n_train = text.replace("count = 25", "count = 4"), config.replace(epochs=1, replicates=2), 64
    t0 = time.perf_counter()
    pop = list(sample_population(parse_recipe(tomllib.loads(text)), 0))
    task = make_task(task_name, seed=config.seed, n_train=n_train)
    features = model_features(pop, None, arch, seed=config.seed)
    results = train_population(pop, arch, task, config)
    if "family" not in results.columns:
        results["family"] = results["topology_id"].map({t.id: t.family for t in pop})
    t_train = time.perf_counter() - t0
    table = study_table(results, features)
    names = [c for c in features.columns if c != "params"] + ["params"]
    cv = cross_validate(table, "test_acc", names, n_estimators=100 if not smoke else 10, importances=False)
    t = cv.table().set_index(["scheme", "model"])
    kfold = t.loc["kfold"]
    ok = results[results["status"] == "ok"]
    row = {
        "design": name, "task": task_name, "arch": arch.kind, "epochs": config.epochs, "n_train": n_train,
        "models": len(results), "ok": len(ok), "mean_acc": float(ok["test_acc"].mean()),
        "acc_by_family": {f: round(float(a), 4) for f, a in ok.groupby("family")["test_acc"].mean().items()},
        "sd_acc": float(ok["test_acc"].std()),
        "ceiling": cv.ceiling["ceiling"] if cv.ceiling else None,
        "r2_forest": float(kfold.loc["forest", "r2"]), "r2_linear_size": float(kfold.loc["linear-size", "r2"]),
        "r2_forest_size": float(kfold.loc["forest-size", "r2"]), "r2_mean": float(kfold.loc["mean", "r2"]),
        "seconds_train": round(t_train, 1), "seconds_total": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.designs.split(","):
        row = measure(name, args.smoke)
        print(json.dumps(row), flush=True)
        with open(args.out / "designs.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
