"""The relational layer as a block product vs the dense masked product, side by side.

graph2nn's relational layer is masked by ``(A + I) (x) 1``: node groups of channels, so a
layer could compute only the blocks its graph has -- work proportional to density, as
graph2nn's FLOPs count it. This script holds that block product (``block_product``: every
node's output channels read the gathered channels of its inputs in one batched product
over nodes, padded to the largest in-degree K) and measures it against the dense masked
product topowire uses, at graph2nn's MLP widths (``width`` 512 dense, FLOPs matched, so a
sparse graph's layers are up to 3x wider) for WS-flex graphs of n = 64 nodes across
densities and rewiring p (which spreads the degrees, raising K). One relational layer of a
pack of ``--models`` models at batch ``--batch``, forward and backward, the two sides
interleaved, best of ``--rounds``; the two outputs are checked equal first. *Share* is
the block product's executed work over the dense product's (n * c_out * K * c_in / W^2).

    python bench/bench_relational.py [--width 512] [--batch 128] [--models 4] [--threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from bench_train import best_of
from torch import Tensor

from topowire.compiler import Arch, wire
from topowire.compiler.targets.relational import _mask, _undirected, channel_counts, relational_width
from topowire.topology.generators import wsflex_graph


def _neighbours(wiring) -> list[list[int]]:
    """Every node's inputs in a relational layer: itself and its neighbours, in order."""
    nodes = [{u} for u in range(wiring.n_neurons)]
    for u, v in _undirected(wiring):
        nodes[u].add(int(v))
        nodes[v].add(int(u))
    return [sorted(s) for s in nodes]


def block_plan(wirings, rows: list[int], cols: list[int], out_pad: int, in_pad: int) -> tuple[Tensor, Tensor]:
    """Where the blocks of the ``(A + I) (x) 1`` masks of P layers are (:func:`block_product`).

    Model p's layer has ``rows[p]`` output and ``cols[p]`` input channels, grouped by its
    graph's nodes (:func:`channel_counts`). Returns ``out_index [P, n, c_out]`` (the output
    channels of every node) and ``in_index [P, n, K * c_in]`` (the input channels of every
    node's inputs: itself and its K - 1 neighbours at most), padded to the pack's largest
    node count, channel counts and K with ``out_pad`` and ``in_pad`` (a zero row and a zero
    column).
    """
    counts = [(channel_counts(r, w.n_neurons), channel_counts(c, w.n_neurons)) for w, r, c in zip(wirings, rows, cols)]
    lists = [_neighbours(w) for w in wirings]
    n = max(w.n_neurons for w in wirings)
    k = max(len(a) for nb in lists for a in nb)
    c_out, c_in = max(int(o.max()) for o, _ in counts), max(int(i.max()) for _, i in counts)
    out_index = np.full((len(wirings), n, c_out), out_pad, dtype=np.int64)
    in_index = np.full((len(wirings), n, k, c_in), in_pad, dtype=np.int64)
    for p, ((o, i), nb) in enumerate(zip(counts, lists)):
        o_start, i_start = np.cumsum(o) - o, np.cumsum(i) - i
        for u, inputs in enumerate(nb):
            out_index[p, u, :o[u]] = o_start[u] + np.arange(o[u])
            for j, v in enumerate(inputs):
                in_index[p, u, j, :i[v]] = i_start[v] + np.arange(i[v])
    return torch.from_numpy(out_index), torch.from_numpy(in_index.reshape(len(wirings), n, k * c_in))


def block_product(h: Tensor, w: Tensor, out_index: Tensor, in_index: Tensor) -> Tensor:
    """``h @ (W * M).T`` for a block-structured mask M, computing only M's blocks.

    ``h [P, B, W_in]``, ``w [P, W_out, W_in]`` (read inside the mask only), and the blocks from
    :func:`block_plan`: every node's output channels read the gathered channels of its
    inputs in one batched product over nodes, ``[P * n, B, K * c_in] x [P * n, K * c_in,
    c_out]`` -- work proportional to the mask's non-zeros (and K, the largest in-degree),
    as graph2nn counts FLOPs, instead of the dense product. Gradients reach exactly the
    weights inside the mask, as with the dense masked product.
    """
    p, b, w_in = h.shape
    w_out = w.shape[1]
    n, c_out, kc = out_index.shape[1], out_index.shape[2], in_index.shape[2]
    x = torch.gather(F.pad(h, (0, 1)), 2, in_index.reshape(p, 1, n * kc).expand(p, b, n * kc))
    x = x.view(p, b, n, kc).transpose(1, 2).reshape(p * n, b, kc)
    rows = torch.gather(F.pad(w, (0, 1, 0, 1)), 1, out_index.reshape(p, n * c_out, 1).expand(p, n * c_out, w_in + 1))
    blocks = torch.gather(rows, 2, in_index[:, :, None, :].expand(p, n, c_out, kc).reshape(p, n * c_out, kc))
    y = torch.bmm(x, blocks.view(p * n, c_out, kc).transpose(1, 2))  # [P * n, B, c_out]
    y = y.view(p, n, b, c_out).transpose(1, 2).reshape(p, b, n * c_out)
    index = out_index.reshape(p, 1, n * c_out).expand(p, b, n * c_out)
    return h.new_zeros(p, b, w_out + 1).scatter(2, index, y)[:, :, :w_out]  # padding lands in the dropped column


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
    print("\n| mean degree | p | density | K | width | share | dense masked ms | block ms | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for degree in args.degrees:
        for p in args.p if degree < 63 else [0.0]:
            graph = wsflex_graph(64, degree, p, seed=1)
            w = wire(graph, "both", "all", "all")
            width = relational_width(w, arch)
            plan = block_plan([w] * args.models, [width] * args.models, [width] * args.models, width, width)
            share = plan[0].shape[1] * plan[0].shape[2] * plan[1].shape[2] / width**2
            mask = _mask(w, width)[None].expand(args.models, -1, -1)
            weights = (torch.randn(args.models, width, width) * mask).requires_grad_(True)
            h = torch.randn(args.models, args.batch, width)
            with torch.no_grad():
                diff = float((block_product(h, weights, *plan) - torch.bmm(h, (weights * mask).transpose(1, 2))).abs().max())
            assert diff < 1e-3, diff
            sides = {"dense": lambda: torch.bmm(h, (weights * mask).transpose(1, 2)).sum().backward(),
                     "block": lambda: block_product(h, weights, *plan).sum().backward()}
            best = dict.fromkeys(sides, float("inf"))
            for _ in range(args.rounds):
                for side, fn in sides.items():
                    best[side] = min(best[side], best_of(fn, 1))
            density = (2 * len(_undirected(w)) + 64) / 64**2
            k = plan[1].shape[2] // int(channel_counts(width, 64).max())
            print(f"| {degree:g} | {p:g} | {density:.3f} | {k} | {width} | {share:.2f} | {best['dense'] * 1e3:.1f} | "
                  f"{best['block'] * 1e3:.1f} | {best['dense'] / best['block']:.2f}x | {diff:.1e} |", flush=True)

if __name__ == "__main__":
    main()
