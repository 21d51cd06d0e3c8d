"""Packed population training vs the prior-work loop, side by side in one run.

P GRU models (WS/ER/BA, n in [32, 64]) train one epoch on ``reber``:

- packed: topowire's trainer (one tensor program per pack, P independent Adams);
- per-model loop: what prior work did -- one module and one ``torch.optim.Adam`` per
  model, trained one after another on the same batches. It is a fair loop: the same
  masked cell code (topowire's functional core at P = 1, whose masked, transposed
  weights are computed once per forward, outside the time loop) and the same clipping.

The two sides are interleaved (packed, loop, packed, loop, ...; the best of ``--rounds``
each), at 1 and 2 torch threads and each batch size, so a busy shared machine slows both
alike. Beside models*epochs/s and the speed-up it prints the roofline of the packed step:

- executed GFLOP/s: the dense FLOPs the packed program computes (padded widths, padded
  time steps), against ``torch.bmm`` at the step's shapes measured in the same run;
- useful GFLOP/s: only the masked products of real time steps, against ``torch.mm``'s
  peak measured in the same run.

Training counts 3 x the forward FLOPs. The CPU model and its vector flags are named.

    python bench/bench_train.py [--models 256] [--looped 64] [--batch 128 32] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from topowire.compiler import Arch, wire
from topowire.compiler.targets.recurrent import MaskedRecurrentNet
from topowire.data import make_task
from topowire.topology import parse_recipe, sample_population
from topowire.train import TrainConfig, train_population
from topowire.train.losses import per_model_loss
from topowire.train.trainer import pack_jobs


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


GATES = 3  # a GRU's


def cpu_name() -> str:
    """The CPU model and the vector extensions that matter to GEMMs."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", info)
    flags = set(re.search(r"flags\s*:\s*(.+)", info)[1].split()) if "flags" in info else set()
    vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model[1].strip() if model else platform.processor() or platform.machine()} ({', '.join(vector) or 'no AVX2'})"


def flops(topologies, arch, task, config) -> tuple[float, float, tuple[int, int, int]]:
    """(executed, useful) FLOPs of one training epoch, and a typical pack's (P, B, N)."""
    n = len(task.y_train)
    order = np.random.default_rng([config.seed, 0]).permutation(n)
    lengths = task.len_train.numpy()
    padded = sum(len(b) * int(lengths[b].max()) for b in (order[i:i + config.batch_size]
                                                         for i in range(0, n, config.batch_size)))
    jobs = pack_jobs(topologies, arch, task, config)
    executed = 0.0
    for job in jobs:
        width = max(s.topology.n for s in job.specs)
        executed += 3 * 2 * len(job.specs) * GATES * width * (arch.d_in + width) * padded
    useful = 3 * 2 * float(lengths.sum()) * sum(GATES * (t.n * arch.d_in + (1 if t.directed else 2) * t.n_edges)
                                               for t in topologies)
    typical = jobs[len(jobs) // 2]
    return executed, useful, (len(typical.specs), config.batch_size, max(s.topology.n for s in typical.specs))


def bmm_rate(p: int, b: int, n: int, repeats: int = 20) -> float:
    """FLOP/s of the packed step's recurrent product, ``[P, B, N] x [P, N, G*N]``."""
    a, w = torch.randn(p, b, n), torch.randn(p, n, GATES * n)
    torch.bmm(a, w)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.bmm(a, w)
    return 2 * p * b * n * GATES * n * repeats / (time.perf_counter() - t0)


def mm_peak(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--looped", type=int, default=64, help="models the per-model loop trains (its rate is per model)")
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 32])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=1000)
    args = ap.parse_args()
    device = torch.device("cpu")
    topologies = population(args.models)
    task = make_task("reber", n_train=args.n_train, n_test=200, seed=0)
    arch = Arch("gru", d_in=7, d_out=2)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {args.models} GRU models (loop: {args.looped}), "
          f"n in [32, 64], reber ({args.n_train} strings), one epoch, best of {args.rounds} interleaved rounds")
    print("\n| threads | batch | packed models/s | loop models/s | speed-up | executed GFLOP/s | bmm at shape GFLOP/s "
          "| of bmm | useful GFLOP/s | mm peak GFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak = mm_peak()
        for batch in args.batch:
            config = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, device="cpu")
            packed = loop = float("inf")
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                train_population(topologies, arch, task, config)
                packed = min(packed, time.perf_counter() - t0)
                loop = min(loop, loop_epoch(topologies[:args.looped], arch, task, config, device))
            executed, useful, shape = flops(topologies, arch, task, config)
            at_shape = bmm_rate(*shape)
            p_rate, l_rate = args.models / packed, args.looped / loop
            print(f"| {threads} | {batch} | {p_rate:.1f} | {l_rate:.1f} | {p_rate / l_rate:.1f}x | "
                  f"{executed / packed / 1e9:.1f} | {at_shape / 1e9:.1f} | {executed / packed / at_shape:.2f} | "
                  f"{useful / packed / 1e9:.2f} | {peak / 1e9:.1f} | {useful / packed / peak:.3f} |", flush=True)


if __name__ == "__main__":
    main()
