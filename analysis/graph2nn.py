"""graph2nn on Fashion-MNIST: does a relational MLP's wiring matter when its compute is fixed?

You, Leskovec, He & Xie (ICML 2020) built MLPs whose every layer is masked by a graph
(`relational` target), matched each graph's width so that every network has the dense
MLP's FLOPs (the stem kept at the dense width: sparse graphs get wider layers), and found
on CIFAR-10 that clustering C and path length L of the graph predict accuracy (a
quadratic in C and L: R² ~ 0.56 against a seed-noise ceiling of ~0.67) with a "sweet spot"
(C 0.1-0.7, L 1.6-3.0) beating the complete graph.

Here, with ``--protocol graph2nn`` (the default): the graphs of ``graphs/graph2nn.toml``
(WS-flex at n = 64 and density >= 0.125, one per cell of a grid over the (C, L) plane, and
the complete graph), relational MLPs FLOPs-matched within 1% to the dense MLP of ``--width``
channels (``match="flops"``), trained as graph2nn trained them -- SGD with Nesterov momentum
0.9, lr 0.1 on a cosine schedule to zero, L2 weight decay 5e-4, batch 128, standardised
inputs, random crop and flip, each seed its own data order -- on the full Fashion-MNIST
(60,000 + 10,000 images, the Debian package ``dataset-fashion-mnist``); then topowire's
predictor with its beyond-size headline, the quadratic (C, L) baseline, the design's power,
and the accuracy map over (C, L). ``--protocol adam`` is the earlier run's protocol, kept
to compare with: parameters matched with the stem included (``match="params"``), Adam at
lr 0.01 constant, no weight decay, inputs / 255, one data order for all seeds.

    python analysis/graph2nn.py --width 128 --epochs 5   # 2 CPU cores: several hours, dense masked
    python analysis/graph2nn.py --device cuda       # graph2nn's own scale: width 512, 3 layers, 100 epochs
    python analysis/graph2nn.py --smoke --out DIR   # seconds, on scikit-learn's digits (the tests)

Training is resumable: the runs are kept in ``--store`` (default ``OUT/runs.db``) and the
same command trains only what is missing. Writes ``OUT/{graphs.csv,summary.json,cl_map.png}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from topowire.compiler import Arch, compile
from topowire.data import make_task
from topowire.predict import cross_validate
from topowire.store import Store
from topowire.study import model_features, study_table
from topowire.topology import parse_recipe, sample_population
from topowire.train import TrainConfig, train_population

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "graph2nn"
#: graph2nn's own MLP scale (its CIFAR-10 relational MLP: 64 nodes, 512 channels, 3 relational
#: layers between stem and head) and budget (100 of its 200 epochs), for a GPU.
CUDA_SCALE = {"n": 64, "width": 512, "depth": 3, "epochs": 100}
#: The training protocols: graph2nn's, and the one of topowire's first reproduction.
PROTOCOLS = {
    "graph2nn": {"match": "flops", "train": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                             "weight_decay": 5e-4, "schedule": "cosine", "standardize": True,
                                             "augment": True, "data_order": "replicate", "clip": None}},
    "adam": {"match": "params", "train": {"optimizer": "adam", "lr": 0.01}},
}
#: The quadrant of the (C, L) plane graph2nn calls its sweet spot.
SWEET_SPOT = {"C": (0.1, 0.7), "L": (1.6, 3.0)}


def population(n: int, seed: int | None = None, candidates: int | None = None):
    """graph2nn.toml's graphs at n nodes (its families' n replaced, the degree range clipped to
    n - 1; fewer WS-flex candidates if asked)."""
    data = tomllib.loads((ROOT / "graphs" / "graph2nn.toml").read_text())
    for fam in data["family"]:
        fam["n"] = n
        if fam["kind"] == "wsflex":
            fam["k"] = [min(v, n - 1.0) for v in fam["k"]]
            if candidates is not None:
                fam["count"] = candidates
    return sample_population(parse_recipe(data), seed)


def per_graph(table: pd.DataFrame) -> pd.DataFrame:
    """Each graph's mean and seed sd of test accuracy, beside its C, L and parameters."""
    g = table.groupby("topology_id")
    out = g.agg(family=("family", "first"), acc=("test_acc", "mean"), acc_sd=("test_acc", "std"),
                seeds=("test_acc", "size"), C=("avg_clustering", "first"), L=("avg_path_length", "first"),
                params=("params", "first"), flops=("flops", "first"), width=("width", "first"),
                n_edges=("n_edges", "first"))
    return out.sort_values("acc", ascending=False)


def draw_map(graphs: pd.DataFrame, path: Path, title: str) -> None:
    """Mean test accuracy of every graph over the (C, L) plane; the complete graph ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    sc = ax.scatter(graphs["C"], graphs["L"], c=graphs["acc"], cmap="viridis", s=40, edgecolors="none")
    full = graphs[graphs["family"] == "complete"]
    ax.scatter(full["C"], full["L"], s=160, facecolors="none", edgecolors="red", label="complete graph")
    ax.add_patch(plt.Rectangle((SWEET_SPOT["C"][0], SWEET_SPOT["L"][0]), np.diff(SWEET_SPOT["C"])[0],
                               np.diff(SWEET_SPOT["L"])[0], fill=False, ls="--", color="grey",
                               label="graph2nn's sweet spot"))
    fig.colorbar(sc, label="mean test accuracy over seeds")
    ax.set_xlabel("clustering coefficient C")
    ax.set_ylabel("average path length L")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def analyse(pop, results: pd.DataFrame, arch: Arch, seed: int, trees: int) -> tuple[dict, pd.DataFrame]:
    """The predictor's scores, the design's power and the per-graph table."""
    features = model_features(list(pop), None, arch, seed=seed)
    by_id = {t.id: t for t in pop}
    results = results[results["topology_id"].isin(by_id)]  # a store's run may hold other draws' models too
    results = results.assign(family=results["topology_id"].map(lambda i: by_id[i].family))
    table = study_table(results, features)
    names = list(features.columns)
    cv = cross_validate(table, "test_acc", names, n_estimators=trees, importances=False, seed=seed,
                        extra_forests={"density-alone": ["density"]})
    scores = cv.table().set_index(["scheme", "model"]).loc["kfold"]
    counts = {t.id: arch.target.parameter_counts(compile(t, arch).wiring, arch) for t in pop}
    graphs = per_graph(table.assign(n_edges=table["topology_id"].map(lambda i: by_id[i].n_edges),
                                    flops=table["topology_id"].map(lambda i: counts[i]["flops"]),
                                    width=table["topology_id"].map(lambda i: counts[i]["width"])))
    complete = graphs[graphs["family"] == "complete"]
    spot = graphs[graphs["C"].between(*SWEET_SPOT["C"]) & graphs["L"].between(*SWEET_SPOT["L"])]
    summary = {
        "headline": cv.headline(),
        "ceiling": cv.ceiling,
        "size_design": cv.size,
        "power": cv.power,
        "r2": {m: {"r2_pooled_oof": float(scores.loc[m, "r2"]), "fold_sd": float(scores.loc[m, "r2_fold_sd"])}
               for m in scores.index},
        "accuracy": {"mean": float(graphs["acc"].mean()), "sd_between_graphs": float(graphs["acc"].std()),
                     "min": float(graphs["acc"].min()), "max": float(graphs["acc"].max()),
                     "seed_sd_mean": float(graphs["acc_sd"].mean()),
                     "seed_sd_of_a_graph_mean": float(graphs["acc_sd"].mean() / np.sqrt(graphs["seeds"].mean()))},
        "params": {"min": int(graphs["params"].min()), "max": int(graphs["params"].max()),
                   "spread": float(graphs["params"].max() / graphs["params"].min() - 1)},
        "flops": {"min": int(graphs["flops"].min()), "max": int(graphs["flops"].max()),
                  "spread": float(graphs["flops"].max() / graphs["flops"].min() - 1)},
        "width": [int(graphs["width"].min()), int(graphs["width"].max())],
        "C": [float(graphs["C"].min()), float(graphs["C"].max())],
        "L": [float(graphs["L"].min()), float(graphs["L"].max())],
        "complete_graph": {"acc": float(complete["acc"].iloc[0]), "rank": int((graphs["acc"] > complete["acc"].iloc[0]).sum()) + 1}
        if len(complete) else None,
        "sweet_spot": {"graphs": len(spot), "mean_acc": float(spot["acc"].mean()) if len(spot) else None,
                       "others_mean_acc": float(graphs.drop(spot.index)["acc"].mean())},
        "best_graphs": graphs.head(5)[["family", "acc", "acc_sd", "C", "L"]].round(4).reset_index().to_dict("records"),
    }
    return summary, graphs


def _cpu() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's."""
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.exists() else []
    return f"{names[0]} x {len(names)}" if names else platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="graph2nn",
                        help="graph2nn's matching and training, or the first reproduction's (adam)")
    parser.add_argument("--n", type=int, default=64, help="nodes of every graph")
    parser.add_argument("--width", type=int, default=128, help="the dense MLP's width, the budget every graph matches")
    parser.add_argument("--depth", type=int, default=3, help="relational layers")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="initialisations (and data orders) of every graph")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, help="learning rate (default: the protocol's)")
    parser.add_argument("--candidates", type=int, help="WS-flex candidates drawn (default: the recipe's 1,000)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for graph2nn's own scale")
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few graphs on scikit-learn's digits")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--store", type=Path, help="the runs database (default OUT/runs.db)")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        for key, value in CUDA_SCALE.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    task_name, n_train, n_test = "fashion-mnist", None, None
    if args.smoke:
        task_name, args.candidates, args.epochs, args.width, args.n, args.trees = "digits", 60, 1, 128, 16, 20
    args.out.mkdir(parents=True, exist_ok=True)
    pop = population(args.n, None, args.candidates)  # the recipe's own seed: the graphs `topowire show` prints
    task = make_task(task_name, seed=args.seed, n_train=n_train, n_test=n_test)
    protocol = PROTOCOLS[args.protocol]
    arch = Arch("relational", width=args.width, depth=args.depth, match=protocol["match"])
    train = {**protocol["train"], **({"lr": args.lr} if args.lr is not None else {})}
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch, replicates=args.seeds, seed=args.seed,
                         device=args.device, **train)
    t0 = time.perf_counter()
    with Store(args.store or args.out / "runs.db") as store:
        done = [0]

        def progress(d: int, total: int) -> None:
            if d - done[0] >= max(1, total // 20) or d == total:
                done[0] = d
                print(f"  trained {int(d)}/{total} models, {time.perf_counter() - t0:.0f} s", flush=True)

        results = train_population(list(pop), arch, task, config, store=store, progress=progress)
    # the training's wall time as measured when each pack ran (a resumed run adds nothing)
    seconds = float(results["seconds"].sum()) if "seconds" in results else time.perf_counter() - t0
    summary, graphs = analyse(pop, results, arch.replace(d_in=task.d_in, d_out=task.d_out), args.seed, args.trees)
    graphs.round(5).to_csv(args.out / "graphs.csv")
    matched = "FLOPs matched ±1%, stem fixed" if arch.match == "flops" else "params matched ±1%, stem included"
    draw_map(graphs, args.out / "cl_map.png",
             f"relational MLP: dense width {args.width}, {args.depth} layers, {matched}\n"
             f"{args.protocol} protocol on {task_name}: {len(graphs)} graphs x {args.seeds} seeds, {args.epochs} epochs")
    summary = {"task": task_name, "n_train": len(task.y_train), "n_test": len(task.y_test), "n": args.n,
               "graphs": len(graphs), "seeds": args.seeds, "dense_width": args.width, "depth": args.depth,
               "protocol": args.protocol, "match": arch.match, "train": config.run_key(),
               "epochs": args.epochs, "batch": args.batch, "lr": config.lr, "device": args.device,
               "train_seconds": round(seconds, 1), "machine": _cpu(),
               "threads": torch.get_num_threads(), "torch": torch.__version__, **summary}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    for key, line in summary["headline"].items():
        print(f"{key}: {line}")


if __name__ == "__main__":
    main()
