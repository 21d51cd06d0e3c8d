"""Dynamics costs: Lyapunov spectra of a pack vs a loop over its models, and the price of
the stability projection in training.

1. ``lyapunov_spectrum`` on a pack of P GRUs (one vmapped program) vs calling it on each
   unpacked model in turn, same inputs; the spectra agree (checked).
2. ``train_pack`` for one epoch with and without ``stability=0.9`` (a batched spectral
   norm and rescale after every step), same pack, same batches.

Both pairs run side by side, alternating, best of ``--repeats``.

    python bench/bench_dynamics.py [--models 64] [--neurons 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from topowire.compiler import Arch, wire
from topowire.compiler.pack import PackedPopulation
from topowire.data import make_task
from topowire.dynamics import lyapunov_spectrum
from topowire.topology import ws_graph
from topowire.train import TrainConfig, train_pack


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--neurons", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    task = make_task("reber", n_train=1000, n_test=200, seed=0)
    wirings = [wire(ws_graph(args.neurons, 4, 0.3, seed=i), "both", "all", "all") for i in range(args.models)]
    seeds = list(range(args.models))
    x = torch.randn(8, args.steps, task.d_in, generator=torch.Generator().manual_seed(0))
    for kind in ("gru", "rnn-tanh"):
        arch = Arch(kind, orientation="both", inputs="all", outputs="all", d_in=task.d_in, d_out=task.d_out)
        packed = PackedPopulation(wirings, arch, seeds)
        models = [packed.unpack(p) for p in range(len(packed))]
        k = 8
        packed_spec = lyapunov_spectrum(packed, x, k)
        loop_spec = torch.stack([lyapunov_spectrum(m, x, k) for m in models])
        assert torch.allclose(packed_spec, loop_spec, atol=1e-8)
        t_loop, t_pack = 0.0, 0.0
        for _ in range(args.repeats):  # alternate, keep the best of each
            t_loop = min(t_loop or 1e9, best(lambda: [lyapunov_spectrum(m, x, k) for m in models], 1))
            t_pack = min(t_pack or 1e9, best(lambda: lyapunov_spectrum(packed, x, k), 1))
        print(f"lyapunov_spectrum, {args.models} x {kind} (n={args.neurons}), 8 sequences x {args.steps} steps, "
              f"k={k}: loop {t_loop:.2f} s, pack {t_pack:.2f} s -> {t_loop / t_pack:.1f}x")
    arch = Arch("rnn-tanh", orientation="both", inputs="all", outputs="all", d_in=task.d_in, d_out=task.d_out)
    t_free, t_stable = 1e9, 1e9
    for _ in range(args.repeats):
        for stability in (None, 0.9):
            packed = PackedPopulation(wirings, arch, seeds)
            config = TrainConfig(epochs=1, batch_size=64, lr=1e-2, stability=stability)
            t = best(lambda: train_pack(packed, task, config), 1)
            if stability is None:
                t_free = min(t_free, t)
            else:
                t_stable = min(t_stable, t)
    print(f"train_pack, {args.models} x rnn-tanh (n={args.neurons}), 1 epoch of 1000 Reber strings at batch 64: "
          f"unconstrained {t_free:.2f} s, stability=0.9 {t_stable:.2f} s -> overhead {t_stable / t_free - 1:+.0%}")


if __name__ == "__main__":
    main()
