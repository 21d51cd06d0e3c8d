"""The relational layer as a block product vs the dense masked product, side by side.

graph2nn's relational layer is masked by ``(A + I) (x) 1``: node groups of channels, so a
layer can compute only the blocks its graph has -- work proportional to density, as
graph2nn counts FLOPs. topowire's block product (:mod:`topowire.compiler.blocks`: per node,
its inputs read in place and its weights packed, one register-tiled C product) is measured
against the dense masked product (``bmm`` of ``W * M``) at graph2nn's MLP widths
(``width`` 512 dense, FLOPs matched, so a sparse graph's layers are up to 3x wider) for
WS-flex graphs of n = 64 nodes across densities and rewiring p. One relational layer of a
pack of ``--models`` models at batch ``--batch``, forward and backward as a training step
runs it (gradients set to None first and freed memory kept in the heap, as the trainer does), the two sides interleaved, best
of ``--rounds``; outputs and both gradients are checked equal first. *Share* is the block
product's executed work over the dense product's (the mask's density, self-loops included,
with each node's output channels rounded up to the kernels' 16 lanes); *density* is the
graph's (networkx's ``density``: edges over n(n - 1)/2); *block used* says whether
topowire's crossover (:func:`~topowire.compiler.blocks.blocks_pay`) picks it at this thread
count.

``--network`` measures a whole training step instead (the pack's forward, backward and the
trainer's ``StackedAdam`` step on random 784-pixel images: stem, three relational layers
with BatchNorm, head), every side with freed memory kept in the heap as the trainer keeps
it (:func:`~topowire.train.heap.kept_heap`): *before*, the dense masked layers and Adam in
elementwise ops (the engine before the block product and the fused Adam); *dense masked*,
the kernels off (``use_kernels(False)``) with the fused Adam; *default*, the block product
where it pays.

    python bench/bench_relational.py [--width 512] [--batch 128] [--models 4] [--threads 1] [--network]
"""

from __future__ import annotations

import argparse

import torch
from bench_train import best_of

from topowire.compiler import Arch, pack, wire
from topowire.compiler.blocks import block_plan, block_product, blocks_pay
from topowire.compiler.kernels import use_kernels
from topowire.compiler.targets.relational import (
    _mask,
    _undirected,
    channel_counts,
    layer_plans,
    neighbours,
    relational_width,
)
from topowire.topology.generators import wsflex_graph
from topowire.train.heap import kept_heap
from topowire.train.optim import StackedAdam


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


def network_row(graph, arch, args) -> tuple[list[float], int]:
    """Best seconds of one training step of a pack of ``args.models`` relational MLPs on this
    graph -- the engine before (dense masked layers, Adam in elementwise ops), the dense
    masked layers with the fused Adam (kernels off), and the default (the block product where
    it pays) -- and how many of its relational layers run on the blocks by default."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 784, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    net = pack([graph] * args.models, arch, seeds=list(range(args.models)))
    opt = StackedAdam([t for t in net.parameters() if t.requires_grad], 1e-3)  # the trainer's optimizer

    def step(kernels_on: bool, fused: bool) -> None:
        with use_kernels(kernels_on):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x).reshape(-1, 10), y.repeat(args.models)).backward()
            opt.step() if fused else opt.step_elementwise()

    sides = [(False, False), (False, True), (True, True)]
    best = [float("inf")] * len(sides)
    for _ in range(args.rounds):
        for i, side in enumerate(sides):
            best[i] = min(best[i], best_of(lambda: step(*side), 1))
    hidden = blocks_pay(layer_plans(net, False)[0], x)
    return best, int(blocks_pay(layer_plans(net, True)[0], x)) + hidden * (arch.depth - 1)


NETWORK_COLUMNS = ["mean degree", "p", "density", "width", "before ms", "dense masked ms", "default ms",
                   "blocks' speed-up", "over before", "layers on blocks"]
LAYER_COLUMNS = ["mean degree", "p", "density", "width", "share", "dense masked ms", "block ms", "speed-up",
                 "block used", "max abs diff"]


def graphs(args):
    """(mean degree, p, graph, its wiring) of every row: WS-flex graphs of 64 nodes."""
    for degree in args.degrees:
        for p in args.p if degree < 63 else [0.0]:
            graph = wsflex_graph(64, degree, p, seed=1)
            yield degree, p, graph, wire(graph, "both", "all", "all")


def network_rows(arch, args) -> None:
    """The whole-network table's rows: one training step, before / dense masked / default."""
    for degree, p, graph, w in graphs(args):
        (before, dense, block), on_blocks = network_row(graph, arch, args)
        density = 2 * len(_undirected(w)) / (64 * 63)
        print(f"| {degree:g} | {p:g} | {density:.3f} | {relational_width(w, arch)} | {before * 1e3:.1f} | "
              f"{dense * 1e3:.1f} | {block * 1e3:.1f} | {dense / block:.2f}x | {before / block:.2f}x | "
              f"{on_blocks} of {arch.depth} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--degrees", type=float, nargs="+", default=[7.9, 15.8, 31.5, 47.3, 63.0])
    ap.add_argument("--p", type=float, nargs="+", default=[0.0, 0.5])
    ap.add_argument("--network", action="store_true", help="a whole training step, kernels off vs on")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = Arch("relational", d_in=784, d_out=10, width=args.width, depth=3)
    what, columns, rows = (("training step (StackedAdam)", NETWORK_COLUMNS, network_rows) if args.network
                           else ("relational layer", LAYER_COLUMNS, layer_rows))
    print(f"graph2nn MLP {what}, width {args.width} dense, n = 64, batch {args.batch}, {args.models} models per "
          f"pack, {args.threads} thread(s), best of {args.rounds} interleaved rounds")
    print("\n| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    with kept_heap():  # as the trainer runs a pack: freed memory reused warm
        rows(arch, args)


def layer_rows(arch, args) -> None:
    """The layer table's rows: dense masked vs block product per graph."""
    for degree, p, _, w in graphs(args):
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
