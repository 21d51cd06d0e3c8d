"""Freed memory kept in the heap while packs train vs given back, side by side.

glibc serves a block above its mmap threshold (at most 32 MiB) with ``mmap`` and unmaps
it on free, so a pack's big tensors, freed and allocated again every training step, are
faulted in afresh each time; :mod:`topowire.train.heap` keeps them in the heap while a
pack trains. glibc's state belongs to the process (and setting it once changes it for the
rest of the process), so each side runs in a fresh process: P recurrent models of
``bench_train.py``'s population train one epoch of ``reber`` with ``TOPOWIRE_KEEP_HEAP=1``
(the default) and ``=0`` (glibc's own behaviour), the sides interleaved round after round,
best of ``--rounds``. Printed per side: models*epochs/s, and the minor page faults and
system CPU seconds of the training alone (``getrusage`` around it, in the child).

    python bench/bench_heap.py [--models 256] [--batch 128] [--kind gru] [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SIDES = {"kept heap": "1", "returned heap": "0"}


def child(args) -> None:
    """Train once and print ``{"seconds", "faults", "system"}`` of the training (one JSON line)."""
    import torch
    from bench_train import population

    from topowire.compiler import Arch
    from topowire.data import make_task
    from topowire.train import TrainConfig, train_population

    torch.set_num_threads(args.threads)
    topologies = population(args.models)
    task = make_task("reber", n_train=args.n_train, n_test=200, seed=0)
    config = TrainConfig(epochs=1, batch_size=args.batch, lr=1e-3, device="cpu")
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    train_population(topologies, Arch(args.kind, d_in=7, d_out=2), task, config)
    seconds, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "faults": after.ru_minflt - before.ru_minflt,
                      "system": after.ru_stime - before.ru_stime}))


def side(args, keep: str) -> dict:
    """One fresh process's training with ``TOPOWIRE_KEEP_HEAP=keep``."""
    argv = [sys.executable, __file__, "--child", "--models", str(args.models), "--batch", str(args.batch),
            "--kind", args.kind, "--threads", str(args.threads), "--n-train", str(args.n_train)]
    done = subprocess.run(argv, env={**os.environ, "TOPOWIRE_KEEP_HEAP": keep}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--kind", default="gru", choices=["gru", "lstm", "rnn-tanh"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    from bench_train import cpu_name

    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, keep in SIDES.items():
            run = side(args, keep)
            if name not in best or run["seconds"] < best[name]["seconds"]:
                best[name] = run
    print(f"CPU: {cpu_name()}; {args.models} {args.kind} models, reber ({args.n_train} strings), one epoch, "
          f"batch {args.batch}, {args.threads} thread(s), each side a fresh process, best of {args.rounds} "
          "interleaved rounds")
    print("\n| side | models/s | page faults | system s |\n|---|---|---|---|")
    for name, run in best.items():
        print(f"| {name} | {args.models / run['seconds']:.1f} | {run['faults']} | {run['system']:.2f} |")
    kept, returned = best["kept heap"], best["returned heap"]
    print(f"\nkept over returned: {returned['seconds'] / kept['seconds']:.2f}x the speed, "
          f"{returned['faults'] / max(kept['faults'], 1):.1f}x fewer page faults")


if __name__ == "__main__":
    main()
