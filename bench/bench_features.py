"""Feature extraction: topowire's igraph engine vs the networkx reference, side by side.

Draws ER/WS/BA graphs with n in [100, 200], computes every registered feature with
topowire (one process, then every core) and with the networkx reference (one process) on
the same graphs in the same run, and prints the ratios. Then times topowire alone on a
large population of n = 200 graphs.

    python bench/bench_features.py                     # the recorded configuration
    python bench/bench_features.py --graphs 200 --large 1000   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from topowire.features import feature_table
from topowire.features.reference import reference_features
from topowire.topology import Population, parse_recipe, sample_population


def population(count: int, n: list[int] | int, seed: int) -> Population:
    per = count // 3
    fams = [
        {"kind": "er", "count": count - 2 * per, "n": n, "p": "6 / (n - 1)"},
        {"kind": "ws", "count": per, "n": n, "k": {"choices": [4, 6, 8]}, "p": [0.0, 1.0]},
        {"kind": "ba", "count": per, "n": n, "m": [2, 4]},
    ]
    return sample_population(parse_recipe({"family": fams}), seed)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, default=2000, help="graphs for the side-by-side comparison")
    ap.add_argument("--large", type=int, default=10000, help="graphs of n = 200 for the throughput run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    cpus = os.cpu_count()
    print(f"machine: {platform.processor() or platform.machine()}, {cpus} cores, "
          f"Python {platform.python_version()}")
    pop = population(args.graphs, [100, 200], args.seed)
    print(f"comparison set: {len(pop)} graphs (ER/WS/BA), n in [100, 200], "
          f"mean edges {np.mean([t.n_edges for t in pop]):.0f}")

    ours1, t_ours1 = timed(lambda: feature_table(pop, n_jobs=1))
    oursN, t_oursN = timed(lambda: feature_table(pop, n_jobs=-1))
    ref, t_ref = timed(lambda: [reference_features(t) for t in pop])

    # same graphs, same numbers (modularity: the two CNM implementations may break ties apart)
    cols = [c for c in ours1.columns if c not in ("modularity", "n_communities")]
    ref_arr = np.array([[r[c] for c in cols] for r in ref])
    max_err = float(np.nanmax(np.abs(ours1[cols].to_numpy() - ref_arr)))

    print()
    print("| run | graphs | seconds | graphs/s | speed-up vs networkx |")
    print("|---|---|---|---|---|")
    print(f"| networkx reference, 1 process | {len(pop)} | {t_ref:.1f} | {len(pop) / t_ref:.1f} | 1.0x |")
    print(f"| topowire, 1 process | {len(pop)} | {t_ours1:.1f} | {len(pop) / t_ours1:.1f} | {t_ref / t_ours1:.1f}x |")
    print(f"| topowire, {cpus} processes | {len(pop)} | {t_oursN:.1f} | {len(pop) / t_oursN:.1f} | {t_ref / t_oursN:.1f}x |")
    print(f"\nlargest |topowire - networkx| over {len(cols)} features: {max_err:.2e}")

    if args.large:
        big = population(args.large, 200, args.seed + 1)
        _, t_big = timed(lambda: feature_table(big, n_jobs=-1))
        print(f"\nthroughput: {len(big)} graphs of n = 200, all {len(ours1.columns)} features, "
              f"{cpus} processes: {t_big:.1f} s ({len(big) / t_big:.0f} graphs/s)")


if __name__ == "__main__":
    main()
