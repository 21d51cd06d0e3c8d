"""A block-structured masked product that computes only its blocks (graph2nn's relational layer).

The relational layer's mask is ``(A + I) (x) 1``: node u's output channels read the channels
of u and its neighbours. :func:`block_plan` lists those blocks for a pack of graphs (a
neighbour run of consecutive nodes is one contiguous segment of channels), and
:func:`block_product` computes ``h @ (W * M).T`` over them with the kernels of
``kernels.c`` -- work proportional to the mask's non-zeros, as graph2nn counts FLOPs --
instead of the dense product masked to zero. Weights stay stored dense (their gradient is
zero outside the blocks, as the dense masked product's is), so a model is the same module
either way; :func:`blocks_pay` chooses by the crossover ``bench/bench_relational.py`` measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from topowire.compiler import kernels

__all__ = ["BlockPlan", "block_plan", "block_product", "blocks_pay", "CROSSOVER", "LANES"]

#: The block product runs where its executed work is at most this share of the dense
#: product's: measured with ``bench/bench_relational.py`` on 1 and 2 threads (BENCHMARKS.md;
#: the blocks split over torch's OpenMP threads scale as its GEMM does).
CROSSOVER = 0.75

#: The kernels compute a node's output channels in vectors of 16 floats (AVX-512; 8 on
#: AVX2, counted as 16 to stay on the safe side): a node of 5 channels costs 16.
LANES = 16


@dataclass(frozen=True)
class BlockPlan:
    """The blocks of a pack's layers: node q is model ``nodes[q, 0]``'s output channels
    ``[nodes[q, 1], + nodes[q, 2])``, reading the input segments ``segs[seg_ptr[q]:seg_ptr[q + 1]]``
    (``[start, length]``); ``k_max``/``c_max`` its largest input and output counts; ``share`` the
    executed multiply-adds (output channels rounded up to :data:`LANES`) over the dense
    ``rows x cols`` product's."""

    nodes: Tensor
    seg_ptr: Tensor
    segs: Tensor
    k_max: int
    c_max: int
    share: float


def _segments(starts: np.ndarray, counts: np.ndarray, inputs: list[int]) -> list[tuple[int, int]]:
    """The channel segments of these input nodes (sorted), consecutive nodes merged."""
    out: list[list[int]] = []
    for v in inputs:
        if counts[v] == 0:
            continue
        if out and out[-1][0] + out[-1][1] == starts[v]:
            out[-1][1] += int(counts[v])
        else:
            out.append([int(starts[v]), int(counts[v])])
    return [(s, c) for s, c in out]


def block_plan(neighbours: list[list[list[int]]], out_counts: list[np.ndarray], in_counts: list[np.ndarray],
               rows: int, cols: int) -> BlockPlan:
    """The :class:`BlockPlan` of P layers: model p's node u has ``out_counts[p][u]`` output
    channels and reads nodes ``neighbours[p][u]`` (itself included), node v having
    ``in_counts[p][v]`` input channels (channels numbered node by node); the pack's padded
    layer is ``rows x cols``. The input gradient's plan is the same call with the counts
    swapped (the neighbour lists of an undirected graph are symmetric)."""
    nodes, seg_ptr, segs, work = [], [0], [], 0
    for p, (nb, o, i) in enumerate(zip(neighbours, out_counts, in_counts)):
        o_start, i_start = np.cumsum(o) - o, np.cumsum(i) - i
        for u, inputs in enumerate(nb):
            found = _segments(i_start, i, inputs)
            if o[u] == 0 or not found:
                continue
            nodes.append((p, int(o_start[u]), int(o[u])))
            segs.extend(found)
            seg_ptr.append(len(segs))
            work += -(-int(o[u]) // LANES) * LANES * sum(c for _, c in found)
    as_tensor = lambda a, shape: torch.tensor(a, dtype=torch.int64).reshape(shape)  # noqa: E731
    k = [sum(c for _, c in segs[a:b]) for a, b in zip(seg_ptr, seg_ptr[1:])]
    return BlockPlan(as_tensor(nodes, (-1, 3)), as_tensor(seg_ptr, (-1,)), as_tensor(segs, (-1, 2)),
                     max(k, default=0), max((c for _, _, c in nodes), default=0),
                     work / max(rows * cols * len(neighbours), 1))


def blocks_pay(plan: BlockPlan, h: Tensor) -> bool:
    """Whether :func:`block_product` should run for this plan and input: float32 on the CPU,
    the kernels built and on, not traced or compiled (an export records the dense masked
    product, which any runtime runs), and the block work within :data:`CROSSOVER` of the
    dense product's."""
    return (h.device.type == "cpu" and h.dtype == torch.float32 and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling() and plan.share <= CROSSOVER
            and kernels.enabled())


def block_product(h: Tensor, w: Tensor, plan: BlockPlan, plan_t: BlockPlan) -> Tensor:
    """``h @ (w * M).T`` per model, M the plan's block mask, computed over its blocks only.

    ``h [P, B, cols]``, ``w [P, rows, cols]`` (read inside the blocks only), ``plan`` the
    layer's :class:`BlockPlan` and ``plan_t`` its transpose's (for the input gradient).
    Equal to the dense product masked by M to float rounding, gradients included (zero
    outside the blocks).
    """
    return _Blocks.apply(h, w, plan, plan_t)


def _forward(plan: BlockPlan, x: Tensor, w: Tensor, out: int, strides: tuple[int, int]) -> Tensor:
    p, b, width = x.shape
    y = x.new_zeros(p, b, out)
    ptr = kernels.pointer
    kernels.library().block_forward(torch.get_num_threads(), len(plan.nodes), b, width, out, ptr(plan.nodes),
                                    ptr(plan.seg_ptr), ptr(plan.segs), plan.k_max, plan.c_max, ptr(x), ptr(w),
                                    w.shape[1] * w.shape[2], *strides, ptr(y))
    return y


class _Blocks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, plan, plan_t):
        h, w = h.contiguous(), w.contiguous()
        ctx.save_for_backward(h, w)
        ctx.plans = plan, plan_t
        return _forward(plan, h, w, w.shape[1], (w.shape[2], 1))

    @staticmethod
    def backward(ctx, grad):
        h, w = ctx.saved_tensors
        plan, plan_t = ctx.plans
        grad = grad.contiguous()
        dh = _forward(plan_t, grad, w, w.shape[2], (1, w.shape[2])) if ctx.needs_input_grad[0] else None
        dw = None
        if ctx.needs_input_grad[1]:
            dw = torch.empty_like(w)  # every entry written by the kernel: zero outside the blocks
            ptr = kernels.pointer
            kernels.library().block_weight_grad(torch.get_num_threads(), w.shape[0], len(plan.nodes), h.shape[1],
                                                w.shape[2], w.shape[1], ptr(plan.nodes), ptr(plan.seg_ptr),
                                                ptr(plan.segs), plan.k_max, plan.c_max, ptr(h), ptr(grad), ptr(dw))
        return dh, dw, None, None
