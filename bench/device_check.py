"""The prepared device run: CUDA verified and measured in one command, within a budget.

On a CUDA machine (``--device cuda``, the default when one is present) it runs, in order,
each step timed and written out as soon as it ends (a run cut short keeps what it did):

1. ``cuda-tests``: the CUDA tests (``pytest -m cuda``);
2. ``agreement``: a pack of 8 GRUs trained one epoch on the device and on the CPU from the
   same seeds (fp32 parameters within 1e-4), and once more under bf16 autocast (no model
   diverges);
3. ``roofline``: the device's measured fp32 and bf16 matmul peaks;
4. ``packed-vs-loop``: one epoch of Reber, packed vs the same per-model loop (topowire's
   masked cell, one Adam per model) vs a loop of dense ``torch.nn.GRU`` models of the same
   hidden sizes (what a user would write), at batch 128 and 32; the packed run's useful
   FLOP/s (real time steps only, training = 3 x forward) against the fp32 peak;
5. ``scaling``: models x steps / s and peak memory against the pack size P, up to the
   largest pack that fits or the step's share of the budget;
6. ``run``: ``topowire run --device`` on the embedded default study, timed;
7. ``thesis-scale``: 200 graphs x 4 cells in the layered form, 15 epochs of Reber (each
   cell's row written as it ends);
8. ``graph2nn``: ``analysis/graph2nn.py`` with graph2nn's protocol (FLOPs matching, its
   (C, L)-stratified graphs at n = 64, SGD with Nesterov momentum, a cosine schedule, weight
   decay, standardised and augmented inputs, a data order per seed) at its own scale (dense
   width 512, 3 relational layers) for ``--graph2nn-epochs`` (default 100, graph2nn's
   budget is 100-200), with what is left of the budget; its store is kept in ``--out``, so
   a second device run with the same ``--out`` resumes it where the first stopped.

It writes ``device_check.json`` and ``device_check.md`` into ``--out``. ``--dry-run`` runs
every step on the CPU at toy sizes in well under a minute (a CI test runs it so).

    python bench/device_check.py --out DIR [--dry-run] [--budget 470]

On the lent machine (torch 2.11, CUDA 13, Python 3.12; igraph and skops travel as wheels
in ``.whl/``, Fashion-MNIST in ``.data/``)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:src TOPOWIRE_FASHION_MNIST_DIR=.data/fashion-mnist \\
        python3 bench/device_check.py --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import loop_epoch, population  # noqa: E402

from topowire.compiler import Arch  # noqa: E402
from topowire.compiler.compile import pack  # noqa: E402
from topowire.data import make_task  # noqa: E402
from topowire.topology import parse_recipe, sample_population  # noqa: E402
from topowire.train import TrainConfig, train_pack, train_population  # noqa: E402
from topowire.train.losses import per_model_loss  # noqa: E402
from topowire.train.spec import prepare_arch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def cuda_tests(ctx: dict) -> dict:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "cuda(" in p.read_text() or "mark.cuda" in p.read_text())
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, capture_output=True, text=True, timeout=ctx["budget_left"]())
    last = (done.stdout.strip().splitlines() or [""])[-1]
    return {"ok": done.returncode in (0, 5) and "failed" not in last, "summary": last,
            "failures": done.stdout[-3000:] if done.returncode not in (0, 5) else ""}


def agreement(ctx: dict) -> dict:
    device, small = ctx["device"], ctx["dry"]
    task = make_task("reber", n_train=128 if small else 512, n_test=64, seed=0)
    topologies = population(6 if small else 8)[: 6 if small else 8]
    arch = prepare_arch(Arch("gru"), task)
    seeds = list(range(len(topologies)))

    def trained(on: str, bf16: bool = False):
        packed = pack(topologies, arch, seeds)
        rows = train_pack(packed, task, TrainConfig(epochs=1, batch_size=32, lr=1e-2, device=on, bf16=bf16))
        return packed.to("cpu"), rows

    cpu, _ = trained("cpu")
    dev, _ = trained(str(device))
    gap = max(float((a - b).detach().abs().max()) for a, b in zip(cpu.parameters(), dev.parameters()))
    _, rows = trained(str(device), bf16=True)
    diverged = sum(r["status"] != "ok" for r in rows)
    return {"ok": gap <= 1e-4 and diverged == 0, "max_abs_gap_fp32": gap, "bf16_diverged": diverged,
            "bf16_on": device.type == "cuda"}


def roofline(ctx: dict) -> dict:
    device, size = ctx["device"], 256 if ctx["dry"] else 8192
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        seconds = _timed(lambda: [a @ b for _ in range(10)], device) / 10
        peaks[f"{name}_tflops"] = 2 * size**3 / seconds / 1e12
    ctx["peaks"] = peaks
    return {"ok": True, "size": size, **peaks}


def _useful_flops(topologies, arch: Arch, task) -> float:
    """Useful FLOPs of one training epoch of masked GRUs: real time steps only, each
    model's masked input and recurrent products, training counted as 3 x the forward."""
    gates = 3
    macs = sum(gates * (t.n * arch.d_in + (2 if not t.directed else 1) * t.n_edges) for t in topologies)
    return 3 * 2 * macs * float(task.len_train.sum())


def _gru_loop_epoch(topologies, task, config: TrainConfig, device: torch.device) -> float:
    """What a user would write: one dense torch.nn.GRU (cuDNN on a GPU) per topology, its
    width the topology's node count, one Adam each, model after model."""
    n = len(task.y_train)
    order = torch.from_numpy(np.random.default_rng([config.seed, 0]).permutation(n))

    def run():
        for t in topologies:
            gru = torch.nn.GRU(task.d_in, t.n, batch_first=True).to(device)
            head = torch.nn.Linear(t.n, task.d_out).to(device)
            opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=config.lr)
            for start in range(0, n, config.batch_size):
                idx = order[start:start + config.batch_size]
                lengths = task.len_train[idx]
                x = task.x_train[idx][:, : int(lengths.max())].to(device)
                states, _ = gru(x)
                last = states[torch.arange(len(idx)), (lengths - 1).to(device)]
                loss = per_model_loss(head(last)[None], task.y_train[idx].to(device), "classification")[0]
                opt.zero_grad()
                loss.backward()
                opt.step()

    return _timed(run, device)


def packed_vs_loop(ctx: dict) -> dict:
    device, dry = ctx["device"], ctx["dry"]
    models, looped = (6, 3) if dry else (256, 32)
    task = make_task("reber", n_train=64 if dry else 1000, n_test=32 if dry else 200, seed=0)
    topologies = population(models)
    arch = prepare_arch(Arch("gru"), task)
    rows = []
    for batch in (128, 32):
        config = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, device=str(device))
        packed = _timed(lambda: train_population(topologies, arch, task, config), device)
        loop = loop_epoch(topologies[:looped], arch, task, config, device)
        gru = _gru_loop_epoch(topologies[:looped], task, config, device)
        flops = _useful_flops(topologies, arch, task) / packed
        rows.append({"batch": batch, "packed_models_per_s": models / packed, "loop_models_per_s": looped / loop,
                     "gru_loop_models_per_s": looped / gru, "vs_loop": models / packed / (looped / loop),
                     "vs_gru_loop": models / packed / (looped / gru), "useful_tflops": flops / 1e12,
                     "of_fp32_peak": flops / 1e12 / ctx.get("peaks", {}).get("fp32_tflops", float("nan"))})
    return {"ok": True, "models": models, "loops_timed_on": looped, "rows": rows}


def scaling(ctx: dict) -> dict:
    device, dry = ctx["device"], ctx["dry"]
    task = make_task("reber", n_train=64 if dry else 256, n_test=32, seed=0)
    arch = prepare_arch(Arch("gru"), task)
    sizes = (3, 6) if dry else (64, 256, 1024, 4096, 16384)
    stop = time.perf_counter() + (10 if dry else min(90, ctx["budget_left"]() / 4))
    rows = []
    for p in sizes:
        if time.perf_counter() > stop:
            break
        topologies = population(p, seed=1)
        config = TrainConfig(epochs=1, batch_size=128, lr=1e-3, device=str(device))
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            packed = pack(topologies, arch, list(range(p)))
            seconds = _timed(partial(train_pack, packed, task, config), device)
        except torch.OutOfMemoryError:
            rows.append({"P": p, "out_of_memory": True})
            break
        steps = -(-len(task.y_train) // config.batch_size)
        rows.append({"P": p, "seconds": seconds, "model_steps_per_s": p * steps / seconds,
                     "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None})
        del packed
    return {"ok": bool(rows), "rows": rows}


def _tiny_recipe(folder: Path) -> Path:
    path = folder / "tiny.toml"
    path.write_text('[population]\nname = "tiny"\nseed = 0\n\n[[family]]\nkind = "er"\ncount = 6\nn = [8, 12]\n'
                    'p = [0.2, 0.5]\n\n[[family]]\nkind = "ws"\ncount = 6\nn = [8, 12]\nk = 2\np = [0.0, 1.0]\n')
    return path


def run_study(ctx: dict) -> dict:
    device, dry, out = ctx["device"], ctx["dry"], ctx["out"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "topowire.cli", "run", "--device", str(device), "-o", str(Path(tmp) / "study")]
        if dry:
            argv[4:4] = [str(_tiny_recipe(Path(tmp))), "--epochs", "1", "--n-train", "64", "--n-test", "32",
                         "--replicates", "2", "--trees", "10"]
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=ctx["budget_left"](),
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])})
        seconds = time.perf_counter() - t0
    (out / "run.log").write_text(done.stdout[-20000:] + done.stderr[-5000:])
    return {"ok": done.returncode == 0, "wall_seconds": seconds, "exit": done.returncode,
            "tail": (done.stderr or done.stdout).strip().splitlines()[-1:] if done.returncode else []}


def thesis_scale(ctx: dict) -> dict:
    device, dry = ctx["device"], ctx["dry"]
    graphs = 4 if dry else 200
    task = make_task("reber", n_train=64 if dry else None, n_test=32 if dry else None, seed=0)
    recipe = parse_recipe({"family": [{"kind": "ws", "count": graphs, "n": [8, 24], "k": 2, "p": [0.0, 1.0]}]})
    topologies = list(sample_population(recipe, 0))
    rows = []
    for cell in ("rnn-tanh", "rnn-relu", "lstm", "gru"):
        if ctx["budget_left"]() < 30:
            rows.append({"cell": cell, "skipped": "over the budget"})
            continue
        config = TrainConfig(epochs=1 if dry else 15, batch_size=32, lr=1e-2, replicates=1, device=str(device))
        frame = None

        def train():
            nonlocal frame
            frame = train_population(topologies, Arch("layered", cell=cell), task, config)

        seconds = _timed(train, device)
        rows.append({"cell": cell, "models": graphs, "seconds": seconds,
                     "mean_test_acc": float(frame.loc[frame["status"] == "ok", "test_acc"].mean())})
        ctx["partial"]({"ok": False, "unfinished": True, "rows": rows})  # a call cut short keeps the cells done
    done = [r for r in rows if "seconds" in r]
    return {"ok": len(done) == 4, "epochs": config.epochs, "total_seconds": sum(r["seconds"] for r in done),
            "rows": rows}


def graph2nn(ctx: dict) -> dict:
    device, dry, out = ctx["device"], ctx["dry"], ctx["out"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, str(ROOT / "analysis" / "graph2nn.py"), "--out", tmp, "--device", str(device),
                "--store", str(out / "graph2nn-runs.db")]
        argv += ["--smoke", "--trees", "20"] if dry else ["--epochs", str(ctx["graph2nn_epochs"])]
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=max(5, ctx["budget_left"]()),
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])})
        seconds = time.perf_counter() - t0
        summary = json.loads((Path(tmp) / "summary.json").read_text()) if done.returncode == 0 else {}
    (out / "graph2nn.log").write_text(done.stdout[-20000:] + done.stderr[-5000:])
    return {"ok": done.returncode == 0, "wall_seconds": seconds, "summary": summary}


STEPS = {"cuda-tests": cuda_tests, "agreement": agreement, "roofline": roofline, "packed-vs-loop": packed_vs_loop,
         "scaling": scaling, "run": run_study, "thesis-scale": thesis_scale, "graph2nn": graph2nn}


def markdown(report: dict) -> str:
    lines = [f"# device check: {report['device']} (torch {report['torch']}{', dry run' if report['dry_run'] else ''})",
             "", "| step | ok | seconds | figures |", "|---|---|---|---|"]
    for name, step in report["steps"].items():
        figures = {k: v for k, v in step.items() if k not in ("ok", "seconds", "rows", "failures")}
        lines.append(f"| {name} | {step.get('ok')} | {step.get('seconds', 0):.1f} | "
                     f"{json.dumps(figures, default=str)[:300]} |")
        for row in step.get("rows", []):
            lines.append(f"| | | | {json.dumps(row, default=str)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dry-run", action="store_true", help="every step on the CPU at toy sizes")
    ap.add_argument("--budget", type=float, default=470, help="seconds of wall time for all steps")
    ap.add_argument("--steps", default=",".join(STEPS), help="comma-separated steps to run")
    ap.add_argument("--graph2nn-epochs", type=int, default=100, help="epochs of the graph2nn step (its cosine schedule's)")
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device; --dry-run runs every step on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ctx = {"device": device, "dry": args.dry_run, "out": args.out, "graph2nn_epochs": args.graph2nn_epochs,
           "budget_left": lambda: max(1.0, args.budget - (time.perf_counter() - start))}
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "dry_run": args.dry_run, "budget_seconds": args.budget, "steps": {}}
    def save() -> None:
        (args.out / "device_check.json").write_text(json.dumps(report, indent=1, default=str))
        (args.out / "device_check.md").write_text(markdown(report))

    for name in args.steps.split(","):
        t0 = time.perf_counter()
        def partial(result: dict, name: str = name, t0: float = t0) -> None:  # a step's rows so far, saved
            report["steps"][name] = {**result, "seconds": time.perf_counter() - t0}
            save()

        ctx["partial"] = partial
        if args.budget - (t0 - start) < 5:
            result = {"ok": False, "skipped": "over the budget"}
        else:
            try:
                result = STEPS[name](ctx)
            except Exception as exc:  # one step's failure is recorded; the others still run
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        report["steps"][name] = {**result, "seconds": time.perf_counter() - t0}
        print(f"{name}: {'ok' if result.get('ok') else 'NOT OK'} ({time.perf_counter() - t0:.1f} s)", flush=True)
        save()
    return 0 if all(s.get("ok") for s in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
