"""Pruning study of arXiv 2407.20601, part 1: how much of a trained RNN can be pruned?

A 3-layer [50, 50, 50] stacked recurrent model per cell type (the layered form on an MLP
graph: dense recurrence inside each layer, every unit of a layer feeding the next) is
trained on Reber classification, then magnitude-pruned at 10%, 20%, ..., 100% of its input
(``ih``: data and inter-layer), recurrent (``hh``) or both weight sets (global ranking;
biases and readout kept) and retrained with the masks fixed. The reference is the unpruned
model retrained for the same epochs. We report, per cell type and regime, the largest rate
whose accuracy stays within 2 points of the reference, beside the thesis's (both: tanh 80%,
ReLU 70%, LSTM 60%, GRU 80%; hh only: 80/70/90/90%).

Pruning is by connection: for gated cells a connection's magnitude is the L2 norm of its
gate weights (:mod:`topowire.dynamics.prune`); the thesis pruned individual weights.

    python analysis/darji_pruning.py --smoke     # seconds (CI)
    python analysis/darji_pruning.py             # the committed run

Writes ``analysis/results/darji_pruning/``: results.csv, summary.md, accuracy.png.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from pathlib import Path

import pandas as pd

from topowire.compiler import Arch, compile
from topowire.data import make_task
from topowire.dynamics.prune import prune
from topowire.topology import mlp_graph
from topowire.train import TrainConfig, evaluate_module, train_module

OUT = Path(__file__).parent / "results" / "darji_pruning"
CELLS = ("rnn-tanh", "rnn-relu", "lstm", "gru")
THESIS = {"both": {"rnn-tanh": 0.8, "rnn-relu": 0.7, "lstm": 0.6, "gru": 0.8},
          "hh": {"rnn-tanh": 0.8, "rnn-relu": 0.7, "lstm": 0.9, "gru": 0.9}}


def largest_rate(frame: pd.DataFrame, tolerance: float = 0.02) -> float:
    """The largest pruning rate whose accuracy is within ``tolerance`` of the rate-0 reference."""
    ref = float(frame.loc[frame.rate == 0, "test_acc"].iloc[0])
    ok = frame[(frame.rate > 0) & (frame.test_acc >= ref - tolerance)]
    return float(ok.rate.max()) if len(ok) else 0.0


def safe_rate(frame: pd.DataFrame, tolerance: float = 0.02) -> float:
    """The largest rate such that it and every smaller rate stay within ``tolerance``."""
    ref = float(frame.loc[frame.rate == 0, "test_acc"].iloc[0])
    best = 0.0
    for rate, acc in frame[frame.rate > 0].sort_values("rate")[["rate", "test_acc"]].itertuples(index=False):
        if acc < ref - tolerance:
            break
        best = float(rate)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--epochs", type=int, default=15, help="training epochs of the unpruned model")
    ap.add_argument("--retrain", type=int, default=4, help="retraining epochs after pruning (thesis: 10)")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--summarize", action="store_true", help="rewrite summary and figure from OUT/results.csv")
    args = ap.parse_args()
    widths, epochs, retrain, n_train, rates = [50, 50, 50], args.epochs, args.retrain, args.n_train, \
        [round(0.1 * i, 1) for i in range(11)]
    if args.smoke:
        widths, epochs, retrain, n_train, rates = [6, 6, 6], 1, 1, 64, [0.0, 0.5, 1.0]
    if args.summarize:
        frame = pd.read_csv(args.out / "results.csv")
        header = (args.out / "summary.md").read_text().split("\n\n")[1]
        return write_summary(frame, args.out, header, args.smoke)
    t0 = time.perf_counter()
    task = make_task("reber", n_train=n_train, n_test=500 if not args.smoke else 64, seed=0)
    graph = mlp_graph(widths)
    rows = []
    for cell in CELLS:
        arch = Arch.thesis(cell, input_width="fixed", d_in=task.d_in, d_out=task.d_out)
        base = compile(graph, arch, seed=0)
        start = time.perf_counter()
        trained = train_module(base, task, TrainConfig(epochs=epochs, batch_size=64, lr=args.lr, seed=0))
        print(f"{cell}: trained to {trained['test_acc']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        for regime in ("ih", "hh", "both"):
            for rate in rates:
                if rate == 0 and regime != "ih":
                    continue  # one reference per cell
                net = copy.deepcopy(base)
                counts = prune(net, rate, regime, "global")[0] if rate > 0 else {}
                pruned = evaluate_module(net, task)["test_acc"]
                res = train_module(net, task, TrainConfig(epochs=retrain, batch_size=64, lr=args.lr, seed=1))
                kept = sum(v for k, v in counts.items() if not k.endswith("_before"))
                total = sum(v for k, v in counts.items() if k.endswith("_before"))
                for reg in (("ih", "hh", "both") if rate == 0 else (regime,)):
                    rows.append({"cell": cell, "regime": reg, "rate": rate, "trained_acc": trained["test_acc"],
                                 "pruned_acc": pruned, "test_acc": res["test_acc"], "status": res["status"],
                                 "connections_kept": kept if rate else None, "connections_before": total if rate else None})
        print(f"{cell}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "results.csv", index=False)
    header = (f"Layered {widths} per cell, Reber ({n_train} train strings, single-edit negatives), Adam {args.lr:g}, "
              f"batch 64, {epochs} training epochs, magnitude pruning (global, by connection), {retrain} retraining "
              f"epochs; {platform.machine()} CPU, {time.perf_counter() - t0:.0f} s.")
    write_summary(frame, args.out, header, args.smoke)


def write_summary(frame: pd.DataFrame, out: Path, header: str, smoke: bool) -> None:
    table = []
    for (cell, regime), sub in frame.groupby(["cell", "regime"], sort=False):
        table.append({"cell": cell, "regime": regime, "reference": float(sub.loc[sub.rate == 0, "test_acc"].iloc[0]),
                      "largest_rate": largest_rate(sub), "safe_rate": safe_rate(sub),
                      "thesis": THESIS.get(regime, {}).get(cell)})
    summary = pd.DataFrame(table)
    text = (f"# Pruning stacked RNNs on Reber{' (smoke)' if smoke else ''}\n\n{header}\n\n"
            "| cell | regime | reference acc | largest rate within 2 points | every rate up to it within 2 points "
            "| thesis |\n|---|---|---|---|---|---|\n"
            + "".join(f"| {r.cell} | {r.regime} | {r.reference:.3f} | {r.largest_rate:.0%} | {r.safe_rate:.0%} | "
                      f"{'-' if pd.isna(r.thesis) else f'{r.thesis:.0%}'} |\n" for r in summary.itertuples()))
    (out / "summary.md").write_text(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    for ax, regime in zip(axes, ("ih", "hh", "both")):
        for cell in CELLS:
            sub = frame[(frame.cell == cell) & (frame.regime == regime)].sort_values("rate")
            ax.plot(sub.rate, sub.test_acc, marker="o", ms=3, label=cell)
        ax.set(title=f"pruned: {regime}", xlabel="pruning rate")
    axes[0].set_ylabel("test accuracy after retraining")
    axes[0].legend()
    fig.savefig(out / "accuracy.png", dpi=110, bbox_inches="tight")
    print(text)


if __name__ == "__main__":
    main()
