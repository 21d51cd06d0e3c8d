"""Gate expressions side by side: T steps of a packed GRU and LSTM, forward and backward,
with topowire's cell equations (one operation per gate, on ``chunk`` views) against the
fewer-kernel alternative (one sigmoid over every sigmoid gate, on slices), in one run,
each side first in turn. Both give the same numbers; the question is which is faster.

    python bench/bench_cells.py [--models 64] [--width 48] [--steps 20] [--batch 128 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from topowire.compiler.cells import CELLS


def sliced(kind: str):
    """The alternative: one sigmoid over every sigmoid gate, the gates read as slices."""
    if kind == "gru":
        def step(gx, gh, h, c, residual, gamma):
            n = h.shape[-1]
            rz = torch.sigmoid(gx[..., :2 * n] + gh[..., :2 * n])
            z = rz[..., n:]
            return (1 - z) * torch.tanh(gx[..., 2 * n:] + rz[..., :n] * gh[..., 2 * n:]) + z * h, None
    else:
        def step(gx, gh, h, c, residual, gamma):
            a, n = gx + gh, h.shape[-1]
            s = torch.sigmoid(a)
            c = s[..., n:2 * n] * c + s[..., :n] * torch.tanh(a[..., 2 * n:3 * n])
            return s[..., 3 * n:] * torch.tanh(c), c
    return step


def run(step, kind: str, p: int, b: int, n: int, steps: int):
    gates = CELLS[kind].gates
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(p, n, gates * n, generator=gen, requires_grad=True)
    xs = torch.randn(steps, p, b, gates * n, generator=gen)
    h = torch.zeros(p, b, n)
    c = torch.zeros(p, b, n) if CELLS[kind].memory else None
    t0 = time.perf_counter()
    for t in range(steps):
        h, c = step(xs[t], torch.bmm(h, w), h, c, None, None)
    h.sum().backward()
    return time.perf_counter() - t0, h.detach(), w.grad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 32])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); P = {args.models}, N = {args.width}, "
          f"T = {args.steps}; forward + backward, best of {args.rounds} rounds, each side first in turn\n")
    print("| cell | batch | topowire ms | one sigmoid, sliced ms | speed-up of the alternative | same numbers |")
    print("|---|---|---|---|---|---|")
    for kind in ("gru", "lstm"):
        for b in args.batch:
            ref = new = float("inf")
            for r in range(args.rounds):  # ABBA: neither side always runs first
                sides = [("ref", CELLS[kind].step), ("new", sliced(kind))][:: 1 if r % 2 == 0 else -1]
                for side, step in sides:
                    seconds, h, g = run(step, kind, args.models, b, args.width, args.steps)
                    if side == "ref":
                        ref, h_ref, g_ref = min(ref, seconds), h, g
                    else:
                        new, h_new, g_new = min(new, seconds), h, g
            same = torch.equal(h_ref, h_new) and torch.allclose(g_ref, g_new, rtol=1e-5, atol=1e-6)
            print(f"| {kind} | {b} | {1e3 * ref:.1f} | {1e3 * new:.1f} | {ref / new:.2f}x | {same} |", flush=True)


if __name__ == "__main__":
    main()
