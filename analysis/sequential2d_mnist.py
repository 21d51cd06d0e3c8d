"""Reproduce arXiv 2404.00880: an MLP vs the randomized Sequential2D of equal trainable count.

The MLP [2500, 500, 200, 100, 10] on MNIST resized to 50x50, and the same grid with
exactly the MLP's number of trainable weights placed uniformly at random over all blocks
(``Sequential2D.randomized``), both trained with Adam (lr 1e-3, batch 64) for the same
epochs from several seeds. The paper reports 92.7% test accuracy for both.

    python analysis/sequential2d_mnist.py --smoke              # seconds (CI)
    python analysis/sequential2d_mnist.py                      # bundled 5k subset, 3 seeds
    python analysis/sequential2d_mnist.py --data-dir ~/mnist   # full MNIST (IDX files)

Writes ``analysis/results/sequential2d_mnist/results.csv``, ``summary.md`` and ``curves.png``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from topowire.compiler import Sequential2D
from topowire.data import load_mnist, mnist_view

SIZES = [2500, 500, 200, 100, 10]
OUT = Path(__file__).parent / "results" / "sequential2d_mnist"


def train(net: torch.nn.Module, x, y, xt, yt, epochs: int, seed: int, batch: int = 64) -> list[float]:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    accs = []
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(y), generator=gen).split(batch):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            accs.append(float((torch.cat([net(c).argmax(1) for c in xt.split(1024)]) == yt).float().mean()))
    return accs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one epoch (seconds)")
    ap.add_argument("--data-dir", help="folder with the MNIST IDX files (default: the bundled subset)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sizes, epochs, seeds, n = (SIZES, args.epochs, args.seeds, None)
    if args.smoke:
        sizes, epochs, seeds, n = ([2500, 50, 20, 10], 1, 1, 300)
    xtr, ytr = load_mnist("train", args.data_dir)
    xte, yte = load_mnist("test", args.data_dir)
    if n:
        xtr, ytr, xte, yte = xtr[:n], ytr[:n], xte[: n // 3], yte[: n // 3]
    x, xt = mnist_view(xtr, "resized"), mnist_view(xte, "resized")
    y, yt = torch.from_numpy(ytr.astype(np.int64)), torch.from_numpy(yte.astype(np.int64))
    rows, curves = [], {}
    t0 = time.perf_counter()
    for seed in range(seeds):
        for name, net in (("mlp", Sequential2D.mlp(sizes, seed=seed)), ("randomized", Sequential2D.randomized(sizes, seed=seed))):
            start = time.perf_counter()
            accs = train(net, x, y, xt, yt, epochs, seed)
            curves[(name, seed)] = accs
            rows.append({"model": name, "seed": seed, "trainable": net.n_trainable(), "test_acc": accs[-1],
                         "best_test_acc": max(accs), "epochs": epochs, "seconds": time.perf_counter() - start})
            print(f"{name:10s} seed {seed}: test accuracy {accs[-1]:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "results.csv", index=False)
    agg = frame.groupby("model")["test_acc"].agg(["mean", "std", "count"])
    gap = agg.loc["mlp", "mean"] - agg.loc["randomized", "mean"]
    data = "full MNIST" if args.data_dir else f"bundled MNIST subset ({len(y)} train / {len(yt)} test)"
    text = (f"# Sequential2D vs MLP on 50x50 MNIST{' (smoke)' if args.smoke else ''}\n\n"
            f"Sizes {sizes}, Adam 1e-3, batch 64, {epochs} epochs, {seeds} seed(s), {data}; "
            f"{platform.machine()} CPU, {time.perf_counter() - t0:.0f} s.\n\n"
            f"| model | trainable | test accuracy (mean ± std) | seeds |\n|---|---|---|---|\n"
            + "".join(f"| {m} | {int(frame[frame.model == m].trainable.iloc[0])} | {r['mean']:.4f} ± "
                      f"{(r['std'] if r['count'] > 1 else 0):.4f} | {int(r['count'])} |\n" for m, r in agg.iterrows())
            + f"\nGap (MLP − randomized): {gap * 100:+.2f} points. The paper reports 92.7% for both on full MNIST.\n")
    (args.out / "summary.md").write_text(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for (name, seed), accs in curves.items():
        ax.plot(range(1, len(accs) + 1), accs, color="tab:blue" if name == "mlp" else "tab:orange",
                label=name if seed == 0 else None, alpha=0.8)
    ax.set(xlabel="epoch", ylabel="test accuracy", title="MLP vs randomized Sequential2D")
    ax.legend()
    fig.savefig(args.out / "curves.png", dpi=110, bbox_inches="tight")
    print(text)


if __name__ == "__main__":
    main()
