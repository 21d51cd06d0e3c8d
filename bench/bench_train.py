"""Packed population training vs the prior-work loop, side by side in one run.

P GRU models (WS/ER/BA, n in [32, 64]) train one epoch on ``reber``:

- packed: topowire's trainer (one tensor program per pack, P independent Adams);
- per-model loop: what prior work did -- one module and one ``torch.optim.Adam`` per
  model, trained one after another on the same batches. It is a fair loop: the same
  masked cell code (topowire's functional core at P = 1, whose masked, transposed
  weights are computed once per forward, outside the time loop) and the same clipping.

Prints models*epochs/s of each and the ratio, at each batch size.

    python bench/bench_train.py [--models 256] [--batch 128 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from topowire.compiler import Arch, wire
from topowire.compiler.targets.cells import MaskedRecurrentNet
from topowire.data import make_task
from topowire.topology import parse_recipe, sample_population
from topowire.train import TrainConfig, train_population
from topowire.train.losses import per_model_loss


def population(count: int, seed: int = 0):
    third = count // 3
    recipe = parse_recipe({"family": [
        {"kind": "ws", "count": count - 2 * third, "n": [32, 64], "k": 4, "p": [0.0, 1.0]},
        {"kind": "er", "count": third, "n": [32, 64], "p": "4 / n"},
        {"kind": "ba", "count": third, "n": [32, 64], "m": [1, 3]},
    ]})
    return list(sample_population(recipe, seed))


def loop_epoch(topologies, arch, task, config, device) -> float:
    """The prior-work approach: model after model, each with its own optimizer."""
    n = len(task.y_train)
    order = torch.from_numpy(np.random.default_rng([config.seed, 0]).permutation(n))
    t0 = time.perf_counter()
    for i, t in enumerate(topologies):
        net = MaskedRecurrentNet(wire(t, arch.orientation, arch.inputs, arch.outputs), arch, seed=i).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            lengths = task.len_train[idx].to(device)
            x = task.x_train[idx][:, : int(lengths.max())].to(device)
            y = task.y_train[idx].to(device)
            loss = per_model_loss(net(x, lengths)[None], y, "classification")[0]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip)
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 32])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n-train", type=int, default=1000)
    args = ap.parse_args()
    device = torch.device(args.device)
    topologies = population(args.models)
    task = make_task("reber", n_train=args.n_train, n_test=200, seed=0)
    arch = Arch("gru", d_in=7, d_out=2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    print(f"device: {name}, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.models} GRU models, "
          f"n in [32, 64], reber ({args.n_train} strings), one epoch")
    print("\n| batch | packed s | per-model loop s | packed models*epochs/s | loop models*epochs/s | speed-up |")
    print("|---|---|---|---|---|---|")
    for batch in args.batch:
        config = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, device=args.device)
        t0 = time.perf_counter()
        train_population(topologies, arch, task, config)
        if device.type == "cuda":
            torch.cuda.synchronize()
        packed = time.perf_counter() - t0
        loop = loop_epoch(topologies, arch, task, config, device)
        m = len(topologies)
        print(f"| {batch} | {packed:.1f} | {loop:.1f} | {m / packed:.1f} | {m / loop:.1f} | {loop / packed:.1f}x |",
              flush=True)


if __name__ == "__main__":
    main()
