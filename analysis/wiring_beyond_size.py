"""How much does wiring explain beyond size? A parameter-matched study.

In every cell (n, m) the three families have the same number of nodes *and* edges, so
size cannot tell them apart: BA(n, m) has M = m (n - m) edges; ER is G(n, M) with exactly
M edges; WS is a ring lattice of the smallest even degree k with n k / 2 >= M, rewired
with p ~ U(0, 1), then thinned to M edges at random. Each topology is trained with
3 replicate seeds in four cell types (masked rnn-tanh, rnn-relu, lstm, gru; natural
wiring) on Reber, and a forest on the graph features is cross-validated beside size alone
and the best single feature (chosen inside the folds), against the noise ceiling.

    python analysis/wiring_beyond_size.py [--cells 12:2,16:2,16:3,20:3] [--per-family 10]
                                          [--cell-types rnn-tanh,...] [--store DIR] [--smoke]

Writes ``analysis/results/wiring_beyond_size/{scores.csv,results.csv,summary.json}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch

from topowire.compiler import Arch
from topowire.data import make_task
from topowire.predict import cross_validate
from topowire.store import Store
from topowire.study import model_features, study_table
from topowire.topology import Topology
from topowire.train import TrainConfig, train_population

OUT = Path(__file__).parent / "results" / "wiring_beyond_size"


def matched_population(cells: list[tuple[int, int]], per_family: int, seed: int = 0) -> list[Topology]:
    """ER, WS and BA graphs with the same n and edge count in every cell (see the docstring)."""
    rng = np.random.default_rng(seed)
    pop = []
    for n, m in cells:
        edges = m * (n - m)
        for i in range(per_family):
            s = int(rng.integers(2**31))
            ba = nx.barabasi_albert_graph(n, m, seed=s)
            er = nx.gnm_random_graph(n, edges, seed=s)
            k = int(np.ceil(2 * edges / n))
            k += k % 2
            ws = nx.watts_strogatz_graph(n, k, float(rng.random()), seed=s)
            drop = ws.number_of_edges() - edges
            if drop > 0:
                all_edges = list(ws.edges())
                ws.remove_edges_from([all_edges[j] for j in rng.choice(len(all_edges), drop, replace=False)])
            for family, g in (("er", er), ("ws", ws), ("ba", ba)):
                assert g.number_of_edges() == edges and g.number_of_nodes() == n
                pop.append(Topology.from_networkx(g, family=family, params={"cell": f"{n}:{m}"}, seed=s))
    return pop


def study(pop: list[Topology], kind: str, config: TrainConfig, n_train: int, trees: int,
          store_dir: Path | None = None) -> tuple[dict, pd.DataFrame]:
    arch = Arch(kind)
    task = make_task("reber", seed=config.seed, n_train=n_train)
    t0 = time.perf_counter()
    features = model_features(pop, None, arch, seed=config.seed)
    if store_dir is None:
        results = train_population(pop, arch, task, config)
    else:  # a store that analysis/proxies.py can read as a study
        (store_dir / kind).mkdir(parents=True, exist_ok=True)
        with Store(store_dir / kind / "runs.db") as store:
            results = train_population(pop, arch, task, config, store=store)
    seconds = time.perf_counter() - t0
    by_id = {t.id: t for t in pop}
    results["family"] = results["topology_id"].map(lambda i: by_id[i].family)
    results["n"] = results["topology_id"].map(lambda i: by_id[i].n)
    results["n_edges"] = results["topology_id"].map(lambda i: by_id[i].n_edges)
    table = study_table(results, features)
    names = [c for c in features.columns if c != "params"] + ["params"]
    cv = cross_validate(table, "test_acc", names, n_estimators=trees, importances=False)
    t = cv.table().set_index(["scheme", "model"]).loc["kfold"]
    ok = results[results["status"] == "ok"]
    row = {"cell_type": kind, "models": len(results), "mean_acc": float(ok["test_acc"].mean()),
           "sd_acc": float(ok["test_acc"].std()), "ceiling": cv.ceiling["ceiling"] if cv.ceiling else None,
           **{f"r2_{m}": float(t.loc[m, "r2"]) for m in t.index},
           **{f"r2_{m}_fold_sd": float(t.loc[m, "r2_fold_sd"]) for m in t.index},
           "spearman_forest": float(t.loc["forest", "spearman"]),
           "best_feature_most_often": pd.Series(cv.chosen).value_counts().index[0],
           "headline": cv.headline(), "seconds": round(seconds, 1)}
    return row, results.drop(columns=["curves"]).assign(cell_type=kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="12:2,16:2,16:3,20:3")
    parser.add_argument("--per-family", type=int, default=10)
    parser.add_argument("--cell-types", default="rnn-tanh,rnn-relu,gru,lstm")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--store", type=Path, help="Also keep each cell type's runs in STORE/<cell>/runs.db.")
    args = parser.parse_args()
    cells = [tuple(int(v) for v in c.split(":")) for c in args.cells.split(",")]
    per_family, epochs, n_train, trees = args.per_family, args.epochs, args.n_train, 100
    if args.smoke:
        cells, per_family, epochs, n_train, trees = cells[:2], 3, 1, 64, 10
    pop = matched_population(cells, per_family)
    config = TrainConfig(epochs=epochs, replicates=3)
    rows, frames = [], []
    for kind in args.cell_types.split(","):
        row, results = study(pop, kind, config, n_train, trees, args.store)
        print(json.dumps({k: v for k, v in row.items() if k != "headline"}), flush=True)
        rows.append(row)
        frames.append(results)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{k: v for k, v in r.items() if k != "headline"} for r in rows]).to_csv(out / "scores.csv",
                                                                                       index=False)
    pd.concat(frames).to_csv(out / "results.csv", index=False)
    (out / "summary.json").write_text(json.dumps({
        "cells": [f"{n}:{m}" for n, m in cells], "per_family": per_family, "epochs": epochs,
        "n_train": n_train, "replicates": 3, "task": "reber", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
