"""Weakly coupled residual RNNs on sequential MNIST rows (arXiv 2307.14823).

The wcrnn cell ``h <- R h + gamma tanh(W h + U x + b)`` with W masked by a WS wiring and a
fixed residual R: rotational 2 x 2 blocks of radius r and angle phi (phi = 0 is the
homogeneous ``r I``). The images are read row by row (28 steps of 28 pixels), so the
characteristic frequency is 2 pi / 28. We sweep r in {0.8, 0.9, 1.0, 1.05} and phi in
{0, pi/28, 2pi/28, 4pi/28} and report, per (r, phi): test accuracy after a fixed budget
of epochs and the epochs to reach a threshold accuracy (mean over wirings x seeds).

    python analysis/wcrnn_smnist.py --smoke     # seconds (CI)
    python analysis/wcrnn_smnist.py             # the committed run (bundled MNIST subset)

Writes ``analysis/results/wcrnn_smnist/``: results.csv, summary.md, heatmap.png.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from topowire.compiler import Arch, wire
from topowire.compiler.pack import PackedPopulation
from topowire.data import make_task
from topowire.topology import ws_graph
from topowire.train import TrainConfig, train_pack

OUT = Path(__file__).parent / "results" / "wcrnn_smnist"
RADII = (0.8, 0.9, 1.0, 1.05)
PHIS = (0.0, math.pi / 28, 2 * math.pi / 28, 4 * math.pi / 28)


def epochs_to(curve: list[float], threshold: float) -> float:
    """The first epoch (1-based) with test accuracy >= threshold, NaN if none."""
    hit = [i + 1 for i, a in enumerate(curve) if a >= threshold]
    return float(hit[0]) if hit else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--graphs", type=int, default=2, help="WS wirings per setting")
    ap.add_argument("--seeds", type=int, default=2, help="initialisations per wiring")
    ap.add_argument("--neurons", type=int, default=64)
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--data-dir", help="full MNIST IDX folder (default: the bundled subset)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    epochs, n_graphs, n_seeds, n, radii, phis, n_train = (args.epochs, args.graphs, args.seeds, args.neurons,
                                                         RADII, PHIS, None)
    if args.smoke:
        epochs, n_graphs, n_seeds, n, radii, phis, n_train = 1, 1, 1, 16, (0.9, 1.0), (0.0, 2 * math.pi / 28), 200
    t0 = time.perf_counter()
    options = {"n_train": n_train, "n_test": n_train} if n_train else {}
    task = make_task("smnist-rows", seed=0, data_dir=args.data_dir, **options)
    graphs = [ws_graph(n, 6, 0.1, seed=i) for i in range(n_graphs)]
    wirings = [wire(g, "both", "all", "all") for g in graphs for _ in range(n_seeds)]
    seeds = [100 * i + s for i in range(n_graphs) for s in range(n_seeds)]
    rows = []
    for r in radii:
        for phi in phis:
            arch = Arch("wcrnn", residual="rotational", r=r, phi=phi, gamma=args.gamma, orientation="both",
                        inputs="all", outputs="all", d_in=task.d_in, d_out=task.d_out)
            packed = PackedPopulation(wirings, arch, seeds)
            start = time.perf_counter()
            results = train_pack(packed, task, TrainConfig(epochs=epochs, batch_size=64, lr=args.lr, seed=0))
            for p, res in enumerate(results):
                rows.append({"r": r, "phi": phi, "phi_over_2pi_28": phi / (2 * math.pi / 28), "model": p,
                             "topology_id": graphs[p // n_seeds].id, "init_seed": seeds[p], "status": res["status"],
                             "test_acc": res["test_acc"],
                             "epochs_to_threshold": epochs_to(res["curves"]["test_acc"], args.threshold),
                             "seconds": (time.perf_counter() - start) / len(results)})
            accs = [x["test_acc"] for x in rows[-len(results):]]
            print(f"r={r:.2f} phi={phi:.4f}: test accuracy {np.nanmean(accs):.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "results.csv", index=False)
    agg = frame.groupby(["r", "phi_over_2pi_28"]).agg(
        acc=("test_acc", "mean"), acc_std=("test_acc", "std"),
        reached=("epochs_to_threshold", lambda s: int(s.notna().sum())),
        to_threshold=("epochs_to_threshold", "mean"), models=("test_acc", "size")).reset_index()
    data = "full MNIST" if args.data_dir else f"bundled MNIST subset ({len(task.y_train)} train / {len(task.y_test)} test)"
    seconds = time.perf_counter() - t0
    text = (f"# wcrnn on sequential MNIST rows{' (smoke)' if args.smoke else ''}\n\n"
            f"Rotational R (phi = 0: homogeneous r I), gamma = {args.gamma}, WS(n={n}, k=6, p=0.1) wirings "
            f"(orientation both), {n_graphs} wiring(s) x {n_seeds} seed(s) per setting, Adam {args.lr:g}, batch 64, "
            f"{epochs} epochs, {data}; {platform.machine()} CPU, {seconds:.0f} s.\n\n"
            f"| r | phi / (2 pi / 28) | test acc (mean ± std) | reached {args.threshold:.0%} | "
            "epochs to it (mean of those) |\n|---|---|---|---|---|\n"
            + "".join(f"| {a.r} | {a.phi_over_2pi_28:.2f} | {a.acc:.3f} ± {0 if np.isnan(a.acc_std) else a.acc_std:.3f} | "
                      f"{a.reached}/{a.models} | {'-' if np.isnan(a.to_threshold) else f'{a.to_threshold:.1f}'} |\n"
                      for a in agg.itertuples()))
    (args.out / "summary.md").write_text(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = agg.pivot(index="r", columns="phi_over_2pi_28", values="acc")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    im = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(grid.columns)), [f"{c:.2f}" for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    for (i, j), v in np.ndenumerate(grid.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
    ax.set(xlabel="phi / (2 pi / 28)", ylabel="r", title=f"test accuracy after {epochs} epochs")
    fig.colorbar(im)
    fig.savefig(args.out / "heatmap.png", dpi=110, bbox_inches="tight")
    print(text)


if __name__ == "__main__":
    main()
