"""Packed population training vs the prior-work loop, side by side in one run.

P models of each cell kind (GRU, LSTM, tanh RNN; WS/ER/BA, n in [32, 64]) train one epoch
on ``reber`` (or ``--task adding``):

- packed: topowire's trainer (one tensor program per pack, P independent Adams), each
  pack's training step one kernel call that computes only the graph's edges, its models one
  after another inside, each model's forward, cross-entropy and backward in turn
  (:func:`topowire.compiler.sequence.sequence_loss`; the default);
- packed, scored outputs: the default with the step's loss scored from the outputs: the
  sequence one kernel call forward and one backward, the readout and cross-entropy in torch
  between them (``Target.losses`` off; what the training-step call replaced: the rows the
  backward reads go to memory and back);
- packed, torch cells: the default with the cells stepped in torch under autograd (the
  engine before the kernels; ``use_kernels(False)``; its time loop over sub-packs sized to
  the L2 cache);
- packed, sub-packs: the same run as sub-packs of 16 models (``sub_pack=16``; the torch
  path's split sized to the cache: the kernels run a pack model by model already, so their
  default is the whole pack in one call);
- packed, product input: the default with the one-hot input projection as a product and
  a bias add per step (what the row gather replaced);
- packed, projected input: the default with narrow dense inputs (``--task adding``: two
  values a step) projected for every step at once, a ``[P, G*N, T*B]`` tensor and its
  gradient, instead of summed in the kernels (what the kernels' values replaced);
- packed, bucketed: the default with batches of similar lengths (``bucket=True``);
- packed, elementwise Adam: the default with Adam's step in elementwise torch ops
  (``StackedAdam.step_elementwise``, what torch's fused Adam replaced);
- per-model loop: what prior work did -- one module and one ``torch.optim.Adam`` per
  model, trained one after another on the same batches (``--looped`` models drawn evenly
  from the population, every family). It is a strict loop: the same cell code (topowire's
  functional core at P = 1 with the same sparse kernels and the same training-step call,
  which computes the loss with the backward, so every kernel speed-up speeds it too), the
  same clipping, the same test-set scoring after the epoch and the same memory policy as
  the trainer (freed memory kept in the heap, :func:`~topowire.train.heap.kept_heap` --
  with glibc's defaults the loop's rate at batch 128 was half, and depended on what the
  process had run before -- and Python's cyclic collector paused,
  :func:`~topowire.train.heap.paused_gc`); the speed-up over it is what packing adds alone.

The sides are interleaved (each variant, then the loop, round after round; the best of
``--rounds`` each), at every thread count and batch size, so a busy shared machine slows
all alike. Beside models*epochs/s and the speed-up over the loop it prints:

- step / GEMMs: the packed epoch's time over the time the dense masked recurrent products
  take alone at the same shapes (per padded time step and sub-pack: the product forward and
  the two of its backward; what the torch path computes), measured in the same run. The
  kernels compute the graph's edges instead, so below 1.0 means the whole epoch takes less
  than those products alone;
- of bmm: the dense FLOPs the packed program executes (padded widths and time steps) per
  second, against ``torch.bmm`` at the whole pack's step shape;
- useful of peak: only the masked products of real time steps, against ``torch.mm``'s peak.

Training counts 3 x the forward FLOPs. The CPU model and its vector flags are named. The
relational layer's dense masked vs block product, across densities, is
``bench/bench_relational.py``; freed memory kept in the heap vs given back,
``bench/bench_heap.py`` (each side in a fresh process: glibc's state is the process's).

    python bench/bench_train.py [--models 256] [--looped 64] [--batch 128 32] [--threads 1]
                                [--kinds gru lstm rnn-tanh] [--variants packed scored-outputs projected-input
                                            torch-cells sub-packs product-input bucketed elementwise-adam]
                                [--task reber|adding] [--n-train 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import re
import time
from pathlib import Path

import torch

from topowire.compiler import Arch, functional, sequence, wire
from topowire.compiler.functional import cache_bytes, sub_pack_size, sub_packs
from topowire.compiler.functional import one_hot_symbols as one_hot
from topowire.compiler.kernels import use_kernels
from topowire.compiler.pack import PackOfOne
from topowire.compiler.targets.recurrent import CellTarget, MaskedRecurrentNet
from topowire.data import make_task
from topowire.topology import parse_recipe, sample_population
from topowire.train import TrainConfig, train_population
from topowire.train.batches import epoch_batches
from topowire.train.heap import kept_heap, paused_gc
from topowire.train.losses import per_model_correct, per_model_loss
from topowire.train.optim import StackedAdam
from topowire.train.trainer import pack_jobs, task_losses


def population(count: int, seed: int = 0):
    third = count // 3
    recipe = parse_recipe({"family": [
        {"kind": "ws", "count": count - 2 * third, "n": [32, 64], "k": 4, "p": [0.0, 1.0]},
        {"kind": "er", "count": third, "n": [32, 64], "p": "4 / n"},
        {"kind": "ba", "count": third, "n": [32, 64], "m": [1, 3]},
    ]})
    return list(sample_population(recipe, seed))


def loop_epoch(topologies, arch, task, config, device) -> float:
    """The prior-work approach: model after model, each with its own optimizer."""
    batches = epoch_batches(len(task.y_train), config.batch_size, (*config.data_stream(0), 0), task.len_train,
                            config.bucket)
    t0 = time.perf_counter()
    with kept_heap(), paused_gc():
        _loop(topologies, arch, task, config, device, batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _loop(topologies, arch, task, config, device, batches) -> None:
    for i, t in enumerate(topologies):
        net = MaskedRecurrentNet(wire(t, arch.orientation, arch.inputs, arch.outputs), arch, seed=i).to(device)
        one = PackOfOne(net)  # its loss as the trainer's: on the kernels, one training-step call
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        for idx in batches:
            lengths = task.len_train[idx].to(device)
            x = task.x_train[idx][:, : int(lengths.max())].to(device)
            y = task.y_train[idx].to(device)
            loss = task_losses(one, task, x, y, lengths, None)[0]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip)
            opt.step()
        with torch.no_grad():  # the test set after the epoch, as the trainer scores every model
            lengths = task.len_test.to(device)
            out = net(task.x_test[:, : int(lengths.max())].to(device), lengths)[None]
            per_model_loss(out, task.y_test.to(device), task.objective)
            per_model_correct(out, task.y_test.to(device), task.objective)


GATES = {"gru": 3, "lstm": 4, "rnn-tanh": 1}
VARIANTS = {"packed": {}, "scored-outputs": {}, "projected-input": {}, "torch-cells": {}, "sub-packs": {"sub_pack": 16},
            "product-input": {}, "bucketed": {"bucket": True}, "elementwise-adam": {}}


@contextlib.contextmanager
def reference_path(variant: str):
    """The engine with one of its changes undone (the reference path its tests compare
    with): ``scored-outputs``, the loss scored from the outputs instead of the kernels'
    training-step call; ``torch-cells``, the cells step by step in torch under autograd
    instead of the fused kernels and their own backward (the engine before them);
    ``product-input``, the input projection as a product instead of the one-hot row gather;
    ``projected-input``, narrow dense inputs projected for every step at once instead of in the
    kernels; ``elementwise-adam``, Adam's step in elementwise torch ops instead of torch's
    fused Adam."""
    saved_symbols, saved_step, saved_losses = functional.one_hot_symbols, StackedAdam.step, CellTarget.losses
    saved_inputs = sequence._inputs
    if variant == "projected-input":
        sequence._inputs = lambda x, w, b, bp, vec: saved_inputs(x, w, b, bp, vec if one_hot(x) is not None else 0)
    if variant == "scored-outputs":
        CellTarget.losses = lambda self, *args: None
    if variant == "product-input":
        functional.one_hot_symbols = lambda x: None
    if variant == "elementwise-adam":
        StackedAdam.step = StackedAdam.step_elementwise
    try:
        with use_kernels(variant != "torch-cells"):
            yield
    finally:
        functional.one_hot_symbols, StackedAdam.step, CellTarget.losses = saved_symbols, saved_step, saved_losses
        sequence._inputs = saved_inputs


def cpu_name() -> str:
    """The CPU model and the vector extensions that matter to GEMMs."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", info)
    flags = set(re.search(r"flags\s*:\s*(.+)", info)[1].split()) if "flags" in info else set()
    vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model[1].strip() if model else platform.processor() or platform.machine()} ({', '.join(vector) or 'no AVX2'})"


def padded_steps(task, config) -> list[tuple[int, int]]:
    """(batch size, padded length) of every batch of the epoch."""
    batches = epoch_batches(len(task.y_train), config.batch_size, (*config.data_stream(0), 0), task.len_train,
                            config.bucket)
    return [(len(b), int(task.len_train[b].max())) for b in batches]


def flops(topologies, arch, task, config) -> tuple[float, float, tuple[int, int, int]]:
    """(executed, useful) FLOPs of one training epoch, and a typical pack's (P, B, N)."""
    g = GATES[arch.kind]
    padded = sum(b * t for b, t in padded_steps(task, config))
    jobs = pack_jobs(topologies, arch, task, config)
    executed = 0.0
    for job in jobs:
        width = max(s.topology.n for s in job.specs)
        executed += 3 * 2 * len(job.specs) * g * width * (arch.d_in + width) * padded
    useful = 3 * 2 * float(task.len_train.sum()) * sum(g * (t.n * arch.d_in + (1 if t.directed else 2) * t.n_edges)
                                                       for t in topologies)
    typical = jobs[len(jobs) // 2]
    return executed, useful, (len(typical.specs), config.batch_size, max(s.topology.n for s in typical.specs))


def best_of(fn, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``fn``, after one untimed warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_seconds(topologies, arch, task, config, cache: dict, repeats: int = 10) -> float:
    """The epoch's GEMMs alone: per pack, batch and padded step, on each sub-pack, the
    recurrent product ``[S, B, N] x [S, N, G*N]`` and its backward's two products (each
    shape timed once into ``cache``, shared by the variants)."""
    g, total = GATES[arch.kind], 0.0
    for job in pack_jobs(topologies, arch, task, config):
        p, n = len(job.specs), max(s.topology.n for s in job.specs)
        for b, steps in padded_steps(task, config):
            with sub_packs(config.sub_pack):
                size = sub_pack_size(p, b, g * n, torch.device("cpu"))
            if (size, b, n) not in cache:
                h, w, dy = torch.randn(size, b, n), torch.randn(size, n, g * n), torch.randn(size, b, g * n)
                w_t = w.transpose(1, 2).contiguous()  # as the backward has it
                cache[size, b, n] = best_of(lambda: (torch.bmm(h, w), torch.bmm(dy, w_t),
                                                   torch.bmm(h.transpose(1, 2), dy)), repeats)
            total += cache[size, b, n] * steps * -(-p // size)
    return total


def bmm_rate(p: int, b: int, n: int, g: int, repeats: int = 20) -> float:
    """FLOP/s of the packed step's recurrent product, ``[P, B, N] x [P, N, G*N]``."""
    a, w = torch.randn(p, b, n), torch.randn(p, n, g * n)
    return 2 * p * b * n * g * n / best_of(lambda: torch.bmm(a, w), repeats)


def mm_peak(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best_of(lambda: a @ b, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--looped", type=int, default=64, help="models the per-model loop trains (its rate is per model)")
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 32])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--kinds", nargs="+", default=list(GATES), choices=list(GATES))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--task", choices=["reber", "adding"], default="reber",
                    help="reber: one-hot symbols, a classification; adding: two values a step over 50 steps, a regression")
    args = ap.parse_args()
    device = torch.device("cpu")
    topologies = population(args.models)
    looped = topologies[::max(1, len(topologies) // args.looped)][:args.looped]  # every family, evenly
    task = make_task(args.task, n_train=args.n_train, n_test=200, seed=0)
    print(f"CPU: {cpu_name()}, L2 {cache_bytes(2) // 1024} KiB per core, L3 {cache_bytes(3) // 2**20} MiB; torch {torch.__version__}; "
          f"{args.models} models (loop: {args.looped}), n in [32, 64], {args.task} ({args.n_train} sequences), one epoch, "
          f"best of {args.rounds} interleaved rounds")
    print("\n| threads | batch | cell | variant | packed models/s | loop models/s | speed-up | step / GEMMs | of bmm "
          "| useful of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak = mm_peak()
        for batch in args.batch:
            for kind in args.kinds:
                arch = Arch(kind, d_in=task.d_in, d_out=task.d_out)
                base = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, device="cpu")
                configs = {v: base.replace(**VARIANTS[v]) for v in args.variants}
                best = dict.fromkeys([*configs, "loop"], float("inf"))
                for _ in range(args.rounds):
                    for v, config in configs.items():
                        with reference_path(v):
                            t0 = time.perf_counter()
                            train_population(topologies, arch, task, config)
                            best[v] = min(best[v], time.perf_counter() - t0)
                    best["loop"] = min(best["loop"], loop_epoch(looped, arch, task, base, device))
                l_rate, cache = args.looped / best["loop"], {}
                for v, config in configs.items():
                    executed, useful, shape = flops(topologies, arch, task, config)
                    at_shape = bmm_rate(*shape, GATES[kind])
                    gemms = gemm_seconds(topologies, arch, task, config, cache)
                    p_rate = args.models / best[v]
                    print(f"| {threads} | {batch} | {kind} | {v} | {p_rate:.1f} | {l_rate:.1f} | {p_rate / l_rate:.1f}x | "
                          f"{best[v] / gemms:.1f} | {executed / best[v] / at_shape:.2f} | {useful / best[v] / peak:.3f} |",
                          flush=True)


if __name__ == "__main__":
    main()
