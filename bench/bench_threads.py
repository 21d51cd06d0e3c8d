"""torch threads when several `topowire train` processes share one machine, side by side.

The README's way to spread a run over processes is to start several ``topowire train``
on one store. Each process's torch takes every core by default, so N processes on C
cores run N x C spinning OpenMP threads. This script trains the same population, each
run on a fresh store, as: one process (torch's threads), one process with ``--threads
1``, two processes sharing the store (torch's threads), and two with ``--threads
cores/2``; it prints the wall seconds of each (until its last process exits) and the
ratio to the first. Two workloads: small masked tanh RNNs (n = 20) and larger GRUs
(n = 200), where a second thread does help a process alone.

    python bench/bench_threads.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from topowire.topology import Population, er_graph, write_population

WORKLOADS = {
    "rnn-tanh n=20, 48 models, 2 epochs": (48, 20, 0.2, ["--arch", "rnn-tanh", "--epochs", "2"]),
    "gru n=200, 16 models, 1 epoch of 2,000": (16, 200, 0.03, ["--arch", "gru", "--epochs", "1", "--n-train", "2000"]),
}


def _train(pop: Path, db: Path, options: list[str], processes: int) -> float:
    """Wall seconds until the last of ``processes`` training processes on one store exits."""
    command = [sys.executable, "-m", "topowire.cli", "train", str(pop), "--db", str(db), "--task", "reber",
               "--lr", "0.01", "--chunk-size", "8", *options]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"training failed: {err.strip()}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="Best of this many runs of each.")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads by default); best of {args.repeats}")
    runs = {"1 process, torch's threads": (1, []), "1 process, --threads 1": (1, ["--threads", "1"]),
            "2 processes, torch's threads": (2, []),
            f"2 processes, --threads {max(1, cores // 2)}": (2, ["--threads", str(max(1, cores // 2))])}
    with tempfile.TemporaryDirectory() as tmp:
        for workload, (count, n, p, options) in WORKLOADS.items():
            pop = Path(tmp) / f"er{n}.jsonl"
            write_population(Population(tuple(er_graph(n, p, seed=i) for i in range(count))), pop)
            print(f"\n{workload}")
            first = None
            for name, (processes, extra) in runs.items():
                seconds = min(_train(pop, Path(tmp) / f"{n}-{name}-{r}.db".replace(" ", "_"), options + extra,
                                     processes) for r in range(args.repeats))
                first = first or seconds
                print(f"  {name:32s} {seconds:7.1f} s  {first / seconds:5.2f}x")


if __name__ == "__main__":
    main()
