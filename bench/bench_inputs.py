"""Narrow dense inputs summed in the kernels vs projected for every step, side by side.

A recurrent cell's inputs narrower than a vector that are not one-hot (the adding problem's
two values a step, sequential MNIST's one pixel) are, on the sequence kernels, a table of
``W_ih.T`` and ``b_ih`` summed per lane weighted by the lane's values
(:func:`topowire.compiler.sequence._inputs`); before, every step's projection was one
``[P, G*N, T*B]`` tensor, with a gradient as large. One pack of ``--models`` models (WS/ER/BA,
n in [32, 64], the bench population's middle third), one training step (the losses with
their backward, the trainer's call), the two ways interleaved, best of ``--rounds``; the
losses are checked equal first. The projection's size is printed beside (it is what the
projected side writes, and its gradient as much again).

    python bench/bench_inputs.py [--task adding smnist-pixels] [--kinds lstm gru] [--models 16] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_train import cpu_name, population, reference_path

from topowire.compiler import Arch
from topowire.compiler.compile import pack
from topowire.compiler.kernels import vector_floats
from topowire.compiler.sequence import reused_buffers
from topowire.data import make_task
from topowire.train.heap import kept_heap, paused_gc
from topowire.train.spec import prepare_arch
from topowire.train.trainer import task_batch, task_losses


def step_seconds(packed, task, batch, variant: str) -> tuple[float, torch.Tensor]:
    """One training step's seconds and its losses, inputs taken the ``variant`` way."""
    with reference_path(variant):
        t0 = time.perf_counter()
        packed.zero_grad(set_to_none=True)
        losses = task_losses(packed, task, *batch)
        losses.sum().backward()
        return time.perf_counter() - t0, losses.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", nargs="+", default=["adding", "smnist-pixels"], choices=["adding", "smnist-pixels"])
    ap.add_argument("--kinds", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru", "rnn-tanh"])
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; one thread; {args.models} models in one pack, batch "
          f"{args.batch}, one training step, best of {args.rounds} interleaved rounds\n")
    print("| task | cell | steps | projection MB | projected ms | in the kernels ms | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name in args.task:
        task = make_task(name, n_train=args.n_train, n_test=8, seed=0)
        batch = task_batch(task, "train", torch.arange(min(args.batch, args.n_train)), "cpu")
        for kind in args.kinds:
            arch = prepare_arch(Arch(kind), task)
            tops = sorted(population(3 * args.models), key=lambda t: t.n)[args.models:2 * args.models]
            packed = pack(tops, arch, list(range(args.models)))
            best = {"packed": float("inf"), "projected-input": float("inf")}
            with kept_heap(), reused_buffers(), paused_gc():
                losses = {v: step_seconds(packed, task, batch, v)[1] for v in best}
                torch.testing.assert_close(losses["packed"], losses["projected-input"], rtol=1e-4, atol=1e-6)
                for _ in range(args.rounds):
                    for v in best:
                        best[v] = min(best[v], step_seconds(packed, task, batch, v)[0])
            x = batch[0]
            lanes = -(-x.shape[0] // vector_floats()) * vector_floats()  # the batch padded to whole vectors
            mb = 4 * args.models * packed.w_ih.shape[1] * x.shape[1] * lanes / 2**20
            print(f"| {name} | {kind} | {x.shape[1]} | {mb:.0f} | {best['projected-input'] * 1e3:.1f} | "
                  f"{best['packed'] * 1e3:.1f} | {best['projected-input'] / best['packed']:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
