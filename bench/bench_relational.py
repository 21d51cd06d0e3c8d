"""The relational layer as a block product vs the dense masked product, side by side.

graph2nn's relational layer is masked by ``(A + I) (x) 1``: node groups of channels, so a
layer can compute only the blocks its graph has -- work proportional to density, as
graph2nn counts FLOPs. topowire's block product (:mod:`topowire.compiler.blocks`: per node,
its inputs read in place and its weights packed, one register-tiled C product) is measured
against the dense masked product (``bmm`` of ``W * M``) at graph2nn's MLP widths
(``width`` 512 dense, FLOPs matched, so a sparse graph's layers are up to 3x wider) for
WS-flex graphs of n = 64 nodes across densities and rewiring p. One relational layer of a
pack of ``--models`` models at batch ``--batch``, forward and backward as a training step
runs it (gradients set to None first, as the trainer does), the two sides interleaved, best
of ``--rounds``; outputs and both gradients are checked equal first. *Share* is the block
product's executed work over the dense product's (the mask's density, self-loops included,
with each node's output channels rounded up to the kernels' 16 lanes); *density* is the
graph's (networkx's ``density``: edges over n(n - 1)/2); *block used* says whether
topowire's crossover (:func:`~topowire.compiler.blocks.blocks_pay`) picks it at this thread
count.

    python bench/bench_relational.py [--width 512] [--batch 128] [--models 4] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch
from bench_train import best_of

from topowire.compiler import Arch, wire
from topowire.compiler.blocks import block_plan, block_product, blocks_pay
from topowire.compiler.targets.relational import _mask, _undirected, channel_counts, neighbours, relational_width
from topowire.topology.generators import wsflex_graph


def _max_gap(width: int, models: int, batch: int, plans, mask) -> float:
    """The largest difference between the two products' outputs and gradients (random data)."""
    gen = torch.Generator().manual_seed(0)
    w = (torch.randn(models, width, width, generator=gen) * mask).requires_grad_(True)
    h = torch.randn(models, batch, width, generator=gen).requires_grad_(True)
    g = torch.randn(models, batch, width, generator=gen)
    out = []
    for fn in (lambda: block_product(h, w, *plans), lambda: torch.bmm(h, (w * mask).transpose(1, 2))):
        h.grad = w.grad = None
        y = fn()
        (y * g).sum().backward()
        out.append((y.detach(), h.grad, w.grad))
    return max(float((a - b).abs().max()) for a, b in zip(*out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--degrees", type=float, nargs="+", default=[7.9, 15.8, 31.5, 47.3, 63.0])
    ap.add_argument("--p", type=float, nargs="+", default=[0.0, 0.5])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = Arch("relational", d_in=784, d_out=10, width=args.width, depth=3)
    print(f"graph2nn MLP relational layer, width {args.width} dense, n = 64, batch {args.batch}, {args.models} "
          f"models per pack, {args.threads} thread(s), best of {args.rounds} interleaved rounds")
    print("\n| mean degree | p | density | width | share | dense masked ms | block ms | speed-up | block used | "
          "max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for degree in args.degrees:
        for p in args.p if degree < 63 else [0.0]:
            graph = wsflex_graph(64, degree, p, seed=1)
            w = wire(graph, "both", "all", "all")
            width = relational_width(w, arch)
            counts = [channel_counts(width, 64)] * args.models
            plan = block_plan([neighbours(w)] * args.models, counts, counts, width, width)
            plans = (plan, plan)  # a square layer of an undirected graph is its own transpose
            mask = _mask(w, width)[None].expand(args.models, -1, -1).contiguous()
            diff = _max_gap(width, args.models, args.batch, plans, mask)
            assert diff < 1e-3, diff
            weights = (torch.randn(args.models, width, width) * mask).requires_grad_(True)
            h = torch.randn(args.models, args.batch, width).requires_grad_(True)

            def step(product):
                h.grad = weights.grad = None
                product().sum().backward()

            sides = {"dense": lambda: step(lambda: torch.bmm(h, (weights * mask).transpose(1, 2))),
                     "block": lambda: step(lambda: block_product(h, weights, *plans))}
            best = dict.fromkeys(sides, float("inf"))
            for _ in range(args.rounds):
                for side, fn in sides.items():
                    best[side] = min(best[side], best_of(fn, 1))
            density = 2 * len(_undirected(w)) / (64 * 63)  # the graph's, as networkx and graph2nn count it
            used = "yes" if blocks_pay(plan, h) else "no"
            print(f"| {degree:g} | {p:g} | {density:.3f} | {width} | {plan.share:.2f} | {best['dense'] * 1e3:.1f} | "
                  f"{best['block'] * 1e3:.1f} | {best['dense'] / best['block']:.2f}x | {used} | {diff:.1e} |", flush=True)

if __name__ == "__main__":
    main()
