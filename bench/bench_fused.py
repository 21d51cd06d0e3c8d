"""Does fusing the step speed up packed training on CPU? Side by side.

One pack of 64 models (ER, n in [32, 63]) trains one epoch of 1,000 Reber strings at
batch 32, for each cell: eager (topowire's functional ``_cell``), then with ``_cell``
replaced by ``torch.compile(_cell, dynamic=True)`` (inductor fuses the gate arithmetic
into one kernel per step): the first compiled run (compilation included), then eager and
warm compiled runs alternating, best of ``--repeats``. Prints the seconds, the ratio
eager / warm, and the largest difference of the final test losses. Then the same for the
trainer's switch ``TrainConfig(fused=True)``, which compiles the whole step (both
projections and the cell).

    python bench/bench_fused.py [--models 64] [--cells gru,lstm,rnn-tanh]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import topowire.compiler.functional as functional
from topowire.compiler import Arch
from topowire.compiler.compile import pack
from topowire.data import make_task
from topowire.topology import er_graph
from topowire.train import TrainConfig
from topowire.train.trainer import train_pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--cells", default="gru,lstm,rnn-tanh")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    task = make_task("reber", n_train=1000, n_test=200, seed=0)
    pop = [er_graph(32 + i % 32, 0.12, seed=i) for i in range(args.models)]
    config = TrainConfig(epochs=1, batch_size=32)
    eager = functional._cell
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.models} models, "
          "1 epoch of 1,000 Reber strings, batch 32")
    for kind in args.cells.split(","):
        arch = Arch(kind, d_in=task.d_in, d_out=task.d_out)

        def run(cfg=config):
            packed = pack(pop, arch, list(range(args.models)))
            t0 = time.perf_counter()
            rows = train_pack(packed, task, cfg)
            return time.perf_counter() - t0, rows

        compiled = torch.compile(eager, dynamic=True)
        functional._cell = compiled
        t_first, _ = run()
        t_eager = t_warm = float("inf")
        for _ in range(args.repeats):
            functional._cell = eager
            t, rows_eager = run()
            t_eager = min(t_eager, t)
            functional._cell = compiled
            t, rows_warm = run()
            t_warm = min(t_warm, t)
        functional._cell = eager
        diff = max(abs(a["test_loss"] - b["test_loss"]) for a, b in zip(rows_eager, rows_warm))
        print(f"{kind:9s} eager {t_eager:6.2f} s | compiled cell: first {t_first:6.2f} s, warm {t_warm:6.2f} s | "
              f"eager/warm {t_eager / t_warm:4.2f}x | max |test loss diff| {diff:.1e}")
        fused = config.replace(fused=True)
        t_first, _ = run(fused)
        t_eager = t_warm = float("inf")
        for _ in range(args.repeats):
            t, rows_eager = run(config)
            t_eager = min(t_eager, t)
            t, rows_warm = run(fused)
            t_warm = min(t_warm, t)
        diff = max(abs(a["test_loss"] - b["test_loss"]) for a, b in zip(rows_eager, rows_warm))
        print(f"{kind:9s} eager {t_eager:6.2f} s | fused step:    first {t_first:6.2f} s, warm {t_warm:6.2f} s | "
              f"eager/warm {t_eager / t_warm:4.2f}x | max |test loss diff| {diff:.1e}")


if __name__ == "__main__":
    main()
