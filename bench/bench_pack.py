"""Packing throughput: wire and pack 10,000 topologies of n <= 64 into one GRU population.

    python bench/bench_pack.py [--count 10000] [--arch gru]
"""

from __future__ import annotations

import argparse
import platform
import time

from topowire.compiler import Arch, wire
from topowire.compiler.pack import PackedPopulation
from topowire.topology import parse_recipe, sample_population


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--arch", default="gru")
    args = ap.parse_args()
    third = args.count // 3
    recipe = parse_recipe({"family": [
        {"kind": "ws", "count": args.count - 2 * third, "n": [16, 64], "k": 4, "p": [0.0, 1.0]},
        {"kind": "ba", "count": third, "n": [16, 64], "m": [1, 3]},
        {"kind": "er", "count": third, "n": [16, 64], "p": "4 / n"},
    ]})
    pop = sample_population(recipe, 0)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    t0 = time.perf_counter()
    wirings = [wire(t, "dag") for t in pop]
    t1 = time.perf_counter()
    packed = PackedPopulation(wirings, Arch(args.arch), list(range(len(wirings))))
    t2 = time.perf_counter()
    mb = sum(p.numel() * p.element_size() for p in packed.parameters()) / 2**20
    print(f"{len(pop)} topologies, n in [16, 64], arch {args.arch}: wire {t1 - t0:.2f} s, "
          f"pack {t2 - t1:.2f} s (goal < 10 s), total {t2 - t0:.2f} s; parameters {mb:.0f} MiB")


if __name__ == "__main__":
    main()
