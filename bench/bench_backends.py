"""Graph-weight backends: dense masked matmul vs torch.sparse CSR vs torch_sparse.

For every size n and density d, a random directed graph with round(d * n^2) edges is
compiled as a GRU (all neurons input and output) with each backend; one training step is
timed: forward + backward over a sequence of T steps at batch B. Memory is the model's
parameter + buffer bytes. Configurations that cannot fit are skipped ("-"). The three
backends run side by side in the same process, so their ratios are comparable.

    python bench/bench_backends.py                    # n = 256 ... 65,536, d = 0.1% ... 50%
    python bench/bench_backends.py --sizes 256 1024 --densities 0.01 0.1
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from topowire.compiler import Arch, Wiring
from topowire.compiler.backends import torch_sparse_available
from topowire.compiler.targets.recurrent import MaskedRecurrentNet

MAX_DENSE_N = 8192          # 3 * n^2 floats for W, again for its gradient and the mask
MAX_EDGE_VALUES = 60_000_000


def random_wiring(n: int, density: float, seed: int) -> Wiring:
    rng = np.random.default_rng(seed)
    e = max(1, round(density * n * n))
    keys = np.unique(rng.integers(0, n * n, size=int(e * 1.05) + 16))
    keys = keys[keys // n != keys % n]
    keys = rng.permutation(keys)[:e]
    edges = np.stack([keys // n, keys % n], axis=1)
    everyone = np.arange(n)
    return Wiring(n, edges, everyone, everyone, orientation="as-is")


def step_seconds(net: MaskedRecurrentNet, x: torch.Tensor, repeats: int) -> float:
    def once():
        net.zero_grad(set_to_none=True)
        net(x).sum().backward()

    once()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def model_mib(net: torch.nn.Module) -> float:
    return sum(t.numel() * t.element_size() for t in list(net.parameters()) + list(net.buffers())) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096, 16384, 65536])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.001, 0.01, 0.1, 0.5])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4, help="sequence length T")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    backends = ["dense", "sparse"] + (["torch_sparse"] if torch_sparse_available() else [])
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"GRU, one training step (forward + backward), T = {args.steps}, batch = {args.batch}; "
          f"backends: {', '.join(backends)}\n")
    print("| n | density | edges | " + " | ".join(f"{b} ms" for b in backends) + " | "
          + " | ".join(f"{b} MiB" for b in backends) + " | fastest |")
    print("|" + "---|" * (4 + 2 * len(backends)))
    crossover: dict[int, list[float]] = {}
    for n in args.sizes:
        for d in args.densities:
            e = round(d * n * n)
            if 3 * e > MAX_EDGE_VALUES and n > MAX_DENSE_N:
                continue
            wiring = random_wiring(n, d, seed=n)
            x = torch.randn(args.batch, args.steps, 7, generator=torch.Generator().manual_seed(0))
            ms, mib = {}, {}
            for b in backends:
                if (b == "dense" and n > MAX_DENSE_N) or (b != "dense" and 3 * wiring.n_edges > MAX_EDGE_VALUES):
                    continue
                net = MaskedRecurrentNet(wiring, Arch("gru", d_in=7, d_out=2, backend=b), seed=0)
                ms[b] = 1000 * step_seconds(net, x, args.repeats)
                mib[b] = model_mib(net)
                del net
            best = min(ms, key=ms.get)
            if best != "dense":
                crossover.setdefault(n, []).append(d)
            cell = lambda table, b, fmt: fmt.format(table[b]) if b in table else "-"  # noqa: E731
            print(f"| {n} | {d:.1%} | {wiring.n_edges} | "
                  + " | ".join(cell(ms, b, "{:.1f}") for b in backends) + " | "
                  + " | ".join(cell(mib, b, "{:.1f}") for b in backends) + f" | {best} |", flush=True)
    print("\ncrossover (a sparse backend fastest):")
    for n in args.sizes:
        ds = crossover.get(n, [])
        print(f"  n = {n}: " + (f"densities <= {max(ds):.1%}" if ds else "never (dense fastest at every density measured)"))


if __name__ == "__main__":
    main()
