"""Where a packed training epoch spends its time: torch.profiler over one pack of GRUs
(the bench_train population's middle pack), one thread, the top operations by self time.

    python bench/profile_train.py [--models 64] [--batch 128] [--n-train 256] [--top 12]
"""

from __future__ import annotations

import argparse

import torch
from bench_train import population
from torch.profiler import ProfilerActivity, profile

from topowire.compiler import Arch
from topowire.compiler.compile import pack
from topowire.data import make_task
from topowire.train import TrainConfig, train_pack
from topowire.train.spec import prepare_arch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = make_task("reber", n_train=args.n_train, n_test=64, seed=0)
    arch = prepare_arch(Arch("gru"), task)
    topologies = sorted(population(3 * args.models), key=lambda t: t.n)[args.models:2 * args.models]
    config = TrainConfig(epochs=1, batch_size=args.batch, lr=1e-3, device="cpu")
    train_pack(pack(topologies, arch, list(range(args.models))), task, config)  # warm-up
    packed = pack(topologies, arch, list(range(args.models)))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_pack(packed, task, config)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    steps = -(-args.n_train // args.batch)
    print(f"{args.models} GRUs, n in [{topologies[0].n}, {topologies[-1].n}], batch {args.batch}, {steps} steps, "
          f"1 thread: {total / 1e6:.2f} s of self time, {sum(e.count for e in events) / steps:.0f} operator calls "
          "per training step\n")
    print("| operation | share of self time | calls per step |")
    print("|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"| {e.key} | {e.self_cpu_time_total / total:.1%} | {e.count / steps:.0f} |")


if __name__ == "__main__":
    main()
