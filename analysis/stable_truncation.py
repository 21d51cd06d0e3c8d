"""Stable recurrent models and their feed-forward truncation (Miller & Hardt, ICLR 2019).

tanh RNNs wired by WS / ER / BA graphs are trained on Reber classification twice from the
same initialisations: unconstrained, and stable (every model's masked W_hh rescaled to
spectral norm <= lambda = 0.9 after each step). For every trained model we measure the
output gap between the full model and its k-truncation (the same model run from a zero
state on the last k inputs), averaged over test strings long enough for every k:

    gap(k) = mean_b || f(x_b) - f(x_b[-k:]) ||_2     (readout logits)

Stability bounds gap(k) <= C lambda^k, so a stable model's log gap falls at least as fast
as k log lambda. We fit the slope of log gap(k) against k per model and compare it with
log lambda.

    python analysis/stable_truncation.py --smoke     # seconds (CI)
    python analysis/stable_truncation.py             # the committed run

Writes ``analysis/results/stable_truncation/``: gaps.csv, slopes.csv, summary.md, gap.png.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from topowire.compiler import Arch, wire
from topowire.compiler.pack import PackedPopulation
from topowire.data import make_task
from topowire.dynamics import spectral_norms, truncated_forward
from topowire.topology import ba_graph, er_graph, ws_graph
from topowire.train import TrainConfig, train_pack

OUT = Path(__file__).parent / "results" / "stable_truncation"
LAMBDA = 0.9


def population(per_family: int, n: int) -> list:
    graphs = []
    for i in range(per_family):
        graphs += [("ws", ws_graph(n, 4, 0.2, seed=i)), ("er", er_graph(n, 4 / n, seed=i)),
                   ("ba", ba_graph(n, 2, seed=i))]
    return graphs


def gaps(packed: PackedPopulation, x: torch.Tensor, ks: list[int]) -> np.ndarray:
    """``[P, len(ks)]`` mean output gap between the full and the k-truncated models."""
    with torch.no_grad():
        full = packed(x)
        return np.stack([(full - truncated_forward(packed, x, k)).norm(dim=-1).mean(dim=1).numpy() for k in ks],
                        axis=1)


def slope(ks: np.ndarray, g: np.ndarray) -> float:
    """Least-squares slope of log gap against k (over gaps above float noise)."""
    ok = g > 1e-9
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(ks[ok], np.log(g[ok]), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--per-family", type=int, default=8)
    ap.add_argument("--neurons", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    per_family, n, epochs, n_train, k_max = args.per_family, args.neurons, args.epochs, 2000, 12
    if args.smoke:
        per_family, n, epochs, n_train, k_max = 1, 12, 1, 128, 6
    t0 = time.perf_counter()
    task = make_task("reber", n_train=n_train, n_test=500, seed=0)
    arch = Arch("rnn-tanh", orientation="both", inputs="all", outputs="all", d_in=task.d_in, d_out=task.d_out)
    graphs = population(per_family, n)
    wirings = [wire(g, "both", "all", "all") for _, g in graphs]
    seeds = list(range(len(graphs)))
    long = task.len_test >= k_max + 2  # strings long enough for every k
    x = task.x_test[long][:, : int(task.len_test[long].min())]  # the same length: no padding
    ks = list(range(1, k_max + 1))
    gap_rows, slope_rows = [], []
    for regime, stability in (("unconstrained", None), ("stable", LAMBDA)):
        packed = PackedPopulation(wirings, arch, seeds)
        config = TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, seed=0, stability=stability)
        results = train_pack(packed, task, config)
        g = gaps(packed, x, ks)
        norms = spectral_norms(packed)[:, 0].numpy()
        for p, (family, graph) in enumerate(graphs):
            for k, v in zip(ks, g[p]):
                gap_rows.append({"regime": regime, "model": p, "family": family, "k": k, "gap": float(v)})
            slope_rows.append({"regime": regime, "model": p, "family": family, "topology_id": graph.id,
                               "test_acc": results[p]["test_acc"], "spectral_norm": float(norms[p]),
                               "slope": slope(np.array(ks, float), g[p])})
        print(f"{regime}: mean test accuracy {np.nanmean([r['test_acc'] for r in results]):.3f}, "
              f"||W_hh||_2 max {norms.max():.3f}", flush=True)
    gaps_frame, slopes = pd.DataFrame(gap_rows), pd.DataFrame(slope_rows)
    args.out.mkdir(parents=True, exist_ok=True)
    gaps_frame.to_csv(args.out / "gaps.csv", index=False)
    slopes.to_csv(args.out / "slopes.csv", index=False)
    agg = slopes.groupby(["regime", "family"]).agg(test_acc=("test_acc", "mean"), norm=("spectral_norm", "max"),
                                                   slope=("slope", "mean"), slope_max=("slope", "max")).reset_index()
    seconds = time.perf_counter() - t0
    text = (f"# Stable models and truncation{' (smoke)' if args.smoke else ''}\n\n"
            f"rnn-tanh on {n}-neuron WS/ER/BA wirings ({per_family} per family, orientation both), Reber "
            f"({n_train} train strings), Adam 1e-2, {epochs} epochs; stable: lambda = {LAMBDA}. Gaps on "
            f"{int(long.sum())} test strings of length >= {k_max + 2}; {platform.machine()} CPU, {seconds:.0f} s.\n\n"
            f"log lambda = {math.log(LAMBDA):.4f}: a stable model's slope of log gap(k) must be <= this.\n\n"
            "| regime | family | test acc | max norm | slope of log gap (mean) | slope (max) |\n|---|---|---|---|---|---|\n"
            + "".join(f"| {r.regime} | {r.family} | {r.test_acc:.3f} | {r.norm:.3f} | {r.slope:.4f} | {r.slope_max:.4f} |\n"
                      for r in agg.itertuples()))
    (args.out / "summary.md").write_text(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for regime, colour in (("unconstrained", "tab:red"), ("stable", "tab:blue")):
        sub = gaps_frame[gaps_frame.regime == regime]
        for i, (_, m) in enumerate(sub.groupby("model")):
            ax.semilogy(m["k"], m["gap"].clip(lower=1e-12), color=colour, alpha=0.35, label=regime if i == 0 else None)
    ref = np.array(ks, float)
    start = gaps_frame[(gaps_frame.regime == "stable") & (gaps_frame.k == 1)]["gap"].max()
    ax.semilogy(ref, start * LAMBDA ** (ref - 1), "k--", label=f"{LAMBDA}^k")
    ax.set(xlabel="k (inputs kept)", ylabel="output gap, full vs k-truncated", title="Truncation gap")
    ax.legend()
    fig.savefig(args.out / "gap.png", dpi=110, bbox_inches="tight")
    print(text)


if __name__ == "__main__":
    main()
