"""Training packed populations (DESIGN §5).

A population is cut into packs; each pack is one tensor program: a shared batch, one
forward pass for all models, loss = sum of the models' mean losses (so every model's
gradient is its own), per-model clipping, P independent optimizers. A model whose loss
stops being finite is frozen (its parameters are restored after every step) and
flagged ``diverged``; the others are untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from topowire.compiler.arch import Arch
from topowire.compiler.layered import PackedLayered
from topowire.compiler.pack import PackedPopulation
from topowire.compiler.wiring import wire
from topowire.data.tasks import Task, make_task
from topowire.dynamics.stability import project_stable
from topowire.errors import ParameterError
from topowire.topology.topology import Topology
from topowire.train.config import TrainConfig
from topowire.train.losses import per_model_correct, per_model_loss, step_mask
from topowire.train.optim import StackedAdam, StackedSGD, clip_per_model

__all__ = ["ModelSpec", "model_specs", "train_pack", "train_module", "train_population", "run_id",
           "estimate_model_bytes"]


@dataclass(frozen=True)
class ModelSpec:
    """One model to train: a topology, a replicate index and its initialisation seed."""

    topology: Topology
    replicate: int
    init_seed: int


#: A pack's widest model is at most this many times its narrowest (see ``_chunks``).
MAX_PADDING = 1.2


def init_seed(root: int, topology_id: str, replicate: int) -> int:
    """The initialisation seed of (topology, replicate) under a root seed -- independent of
    the model's position in the population or its pack."""
    key = (int(topology_id[:8], 16), int(topology_id[8:16], 16), replicate)
    return int(np.random.SeedSequence(root, spawn_key=key).generate_state(1, np.uint32)[0])


def model_specs(topologies: Sequence[Topology], config: TrainConfig) -> list[ModelSpec]:
    """Every (topology, replicate) of a population with its seed."""
    return [ModelSpec(t, r, init_seed(config.seed, t.id, r)) for t in topologies for r in range(config.replicates)]


def _task_hash(task: Task) -> str:
    h = hashlib.sha256(task.name.encode())
    for t in (task.x_train, task.y_train, task.len_train, task.x_test, task.y_test, task.len_test):
        if t is not None:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def run_id(arch: Arch, task: Task, config: TrainConfig) -> str:
    """The name of a run: a hash of the arch, the task's data and the result-changing options."""
    import json

    key = {"arch": arch.to_dict(), "task": task.name, "data": _task_hash(task), "train": config.run_key()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def estimate_model_bytes(n: int, arch: Arch, batch: int, steps: int) -> int:
    """Rough bytes one padded model of width n needs in a pack while training."""
    g = arch.gates
    params = g * n * n + g * n * arch.d_in + 2 * g * n + arch.d_out * (n + 1)
    state = 4 * params * 4 + 4 * n * n          # parameter, gradient, two moments; the mask
    activations = 4 * (3 * g + 4) * n * batch * max(1, steps)
    return int(state + activations)


def _autocast(config: TrainConfig):
    if config.bf16 and config.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _forward(packed: PackedPopulation, task: Task, x: Tensor, lengths: Tensor | None) -> Tensor:
    if not task.sequence:
        return packed(x)
    return packed(x, lengths, all_steps=task.per_step)


def _batch(task: Task, split: str, idx, device) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    x, y, lengths = (task.x_train, task.y_train, task.len_train) if split == "train" else \
        (task.x_test, task.y_test, task.len_test)
    xb, yb = x[idx].to(device), y[idx].to(device)
    lb = lengths[idx].to(device) if lengths is not None else None
    if lb is not None:
        t = int(lb.max())
        xb = xb[:, :t]
        if task.per_step:
            yb = yb[:, :t]
    mask = step_mask(lb, xb.shape[1]) if (lb is not None and task.per_step) else None
    return xb, yb, lb, mask


@torch.no_grad()
def _evaluate(packed: PackedPopulation, task: Task, config: TrainConfig, device) -> tuple[Tensor, Tensor]:
    n = len(task.y_test)
    p = len(packed)
    loss_sum = torch.zeros(p, device=device)
    correct = torch.zeros(p, device=device)
    step = max(config.batch_size, 512)
    for start in range(0, n, step):
        idx = torch.arange(start, min(n, start + step))
        xb, yb, lb, mask = _batch(task, "test", idx, device)
        with _autocast(config):
            out = _forward(packed, task, xb, lb)
        loss_sum += per_model_loss(out, yb, task.kind, mask) * len(idx)
        correct += per_model_correct(out, yb, task.kind, mask)
    return loss_sum / n, correct / n


def train_pack(packed: PackedPopulation, task: Task, config: TrainConfig, *,
               lr: float | Tensor | None = None, on_step: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Train one pack in place; return one result dict per model.

    Parameters
    ----------
    packed : PackedPopulation
        The models (their ``arch.d_in`` / ``d_out`` must match the task).
    task : Task
        The data.
    config : TrainConfig
        Options; ``lr`` may be overridden per model by ``lr`` (a ``[P]`` tensor).
    """
    device = torch.device(config.device)
    packed.to(device)
    params = list(packed.parameters())
    rate = config.lr if lr is None else lr
    opt = StackedAdam(params, rate) if config.optimizer == "adam" else StackedSGD(params, rate, config.momentum)
    p = len(packed)
    alive = torch.ones(p, dtype=torch.bool, device=device)
    frozen: dict[str, Tensor] = {}  # parameters of diverged models, taken when they diverge
    diverged_at = [None] * p
    curves = {"train_loss": [[] for _ in range(p)], "test_loss": [[] for _ in range(p)],
              "test_acc": [[] for _ in range(p)]}
    n = len(task.y_train)
    if config.stability is not None:
        project_stable(packed, config.stability)
    for epoch in range(config.epochs):
        order = torch.from_numpy(np.random.default_rng([config.seed, epoch]).permutation(n))
        loss_sum = torch.zeros(p, device=device)
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            xb, yb, lb, mask = _batch(task, "train", idx, device)
            with _autocast(config):
                out = _forward(packed, task, xb, lb)
            losses = per_model_loss(out, yb, task.kind, mask)
            bad = (~torch.isfinite(losses) | (losses > config.diverge_loss)) & alive
            if bad.any():
                for name, t in packed.named_parameters():
                    frozen.setdefault(name, torch.empty_like(t))[bad] = t.detach()[bad]
                for i in torch.nonzero(bad).flatten().tolist():
                    diverged_at[i] = epoch
                alive &= ~bad
            total = torch.where(alive, losses, torch.zeros_like(losses)).sum()
            opt.zero_grad()
            total.backward()
            if config.clip is not None:
                clip_per_model(params, config.clip)
            opt.step()
            if config.stability is not None:
                project_stable(packed, config.stability, alive)
            if not alive.all():
                dead = ~alive
                with torch.no_grad():
                    for name, t in packed.named_parameters():
                        t[dead] = frozen[name][dead]
            loss_sum += torch.where(alive, losses.detach(), torch.zeros_like(losses)) * len(idx)
            if on_step is not None:
                on_step()
        test_loss, test_acc = _evaluate(packed, task, config, device)
        for i in range(p):
            curves["train_loss"][i].append(float(loss_sum[i] / n) if alive[i] else float("nan"))
            curves["test_loss"][i].append(float(test_loss[i]) if alive[i] else float("nan"))
            curves["test_acc"][i].append(float(test_acc[i]) if alive[i] else float("nan"))
    results = []
    for i in range(p):
        ok = diverged_at[i] is None
        results.append({
            "status": "ok" if ok else "diverged",
            "diverged_epoch": diverged_at[i],
            "train_loss": curves["train_loss"][i][-1],
            "test_loss": curves["test_loss"][i][-1],
            "test_acc": curves["test_acc"][i][-1],
            "curves": {k: v[i] for k, v in curves.items()},
        })
    return results


class _AsPack(torch.nn.Module):
    """One standalone module seen as a pack of one (outputs with a leading P = 1)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def __len__(self) -> int:
        return 1

    def forward(self, x: Tensor, lengths: Tensor | None = None, all_steps: bool = False) -> Tensor:
        if lengths is None:
            return self.module(x)[None]
        return (self.module(x, lengths, all_steps=True) if all_steps else self.module(x, lengths))[None]


def train_module(module: torch.nn.Module, task: Task, config: TrainConfig) -> dict[str, Any]:
    """Train one standalone module in place (any compiled module, the layered form too).

    The same batches, order, loss, clipping (``torch.nn.utils.clip_grad_norm_``) and
    stability projection as :func:`train_pack`, with ``torch.optim.Adam`` / ``SGD``. A
    loss that stops being finite (or exceeds ``diverge_loss``) ends training with status
    ``diverged``. Returns the final losses and accuracy and the per-epoch curves.
    """
    device = torch.device(config.device)
    view = _AsPack(module).to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=config.lr) if config.optimizer == "adam"
           else torch.optim.SGD(params, lr=config.lr, momentum=config.momentum))
    if config.stability is not None:
        project_stable(module, config.stability)
    curves: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "test_acc": []}
    n = len(task.y_train)
    status = "ok"
    for epoch in range(config.epochs):
        order = torch.from_numpy(np.random.default_rng([config.seed, epoch]).permutation(n))
        loss_sum = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            xb, yb, lb, mask = _batch(task, "train", idx, device)
            with _autocast(config):
                loss = per_model_loss(_forward(view, task, xb, lb), yb, task.kind, mask)[0]
            value = float(loss.detach())
            if not math.isfinite(value) or value > config.diverge_loss:
                status = "diverged"
                break
            opt.zero_grad()
            loss.backward()
            if config.clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.clip)
            opt.step()
            if config.stability is not None:
                project_stable(module, config.stability)
            loss_sum += value * len(idx)
        if status != "ok":
            break
        test_loss, test_acc = _evaluate(view, task, config, device)
        curves["train_loss"].append(loss_sum / n)
        curves["test_loss"].append(float(test_loss[0]))
        curves["test_acc"].append(float(test_acc[0]))
    nan = float("nan")
    return {"status": status, "train_loss": curves["train_loss"][-1] if status == "ok" and curves["train_loss"] else nan,
            "test_loss": curves["test_loss"][-1] if status == "ok" and curves["test_loss"] else nan,
            "test_acc": curves["test_acc"][-1] if status == "ok" and curves["test_acc"] else nan, "curves": curves}


def evaluate_module(module: torch.nn.Module, task: Task, config: TrainConfig | None = None) -> dict[str, float]:
    """Test loss and accuracy of one standalone module."""
    config = config or TrainConfig()
    device = torch.device(config.device)
    loss, acc = _evaluate(_AsPack(module).to(device), task, config, device)
    return {"test_loss": float(loss[0]), "test_acc": float(acc[0])}


def prepare_arch(arch: Arch, task: Task, config: TrainConfig | None = None) -> Arch:
    """The arch with the task's widths, or ParameterError if the two do not go together."""
    if arch.recurrent and not task.sequence:
        raise ParameterError(f"task {task.name!r} gives static inputs; a recurrent arch needs a sequence task "
                             "(e.g. smnist-rows)")
    if config is not None and config.stability is not None and not arch.masked_cell:
        raise ParameterError(f"stability applies to recurrent archs, not {arch.kind!r}")
    if arch.kind == "iterative" and task.sequence:
        raise ParameterError(f"task {task.name!r} gives sequences; the iterative map needs a static task (e.g. mnist)")
    if arch.kind == "layered" and task.per_step:
        raise ParameterError(f"task {task.name!r} is scored at every step; the layered form reads out at the last")
    return arch.replace(d_in=task.d_in, d_out=task.d_out)


def _chunks(specs: list[ModelSpec], wirings, arch: Arch, config: TrainConfig, steps: int) -> list[list[ModelSpec]]:
    """Cut width-sorted models into packs: ``chunk_size`` each, or as many as fit the memory
    budget (the last model added is the widest, so it sets the pack's padded width) while
    the widest stays within ``MAX_PADDING`` times the narrowest (padding is wasted work)."""
    if config.chunk_size is not None:
        return [specs[i:i + config.chunk_size] for i in range(0, len(specs), config.chunk_size)]
    budget = config.memory_mb * 2**20
    chunks: list[list[ModelSpec]] = []
    for s in specs:
        per = estimate_model_bytes(wirings[s.topology.id].n_neurons, arch, config.batch_size, steps)
        narrowest = wirings[chunks[-1][0].topology.id].n_neurons if chunks else 0
        width = wirings[s.topology.id].n_neurons
        if chunks and (len(chunks[-1]) + 1) * per <= budget and width <= MAX_PADDING * narrowest:
            chunks[-1].append(s)
        else:
            chunks.append([s])
    return chunks


def train_population(
    topologies: Sequence[Topology],
    arch: Arch,
    task: Task | str,
    config: TrainConfig,
    *,
    store=None,
    progress: Callable[[int, int], None] | None = None,
    task_options: dict[str, Any] | None = None,
):
    """Train every (topology, replicate) and return one row per model (pandas).

    Parameters
    ----------
    topologies : sequence of Topology
        A population.
    arch : Arch
        One arch for all models; ``d_in`` and ``d_out`` are taken from the task.
    task : Task or str
        The data, or a task name built with ``make_task(name, seed=config.seed, **task_options)``.
    config : TrainConfig
        Options.
    store : topowire.store.Store, optional
        Results are committed there pack by pack, and models already done for this run
        are skipped (resume).
    progress : callable, optional
        ``progress(done, total)`` after every pack.

    Returns
    -------
    pandas.DataFrame
        One row per model: topology id, replicate, seed, status, final losses and
        accuracy, effective parameters, seconds (the pack's wall time shared equally),
        and the per-epoch curves. With a store: every model of the run so far.
    """
    import pandas as pd

    if isinstance(task, str):
        task = make_task(task, seed=config.seed, **(task_options or {}))
    arch = prepare_arch(arch, task, config)
    topologies = list(topologies)
    rid = run_id(arch, task, config)
    specs = model_specs(topologies, config)
    total = len(specs)
    if store is not None:
        store.ensure_run(rid, arch, task.name, config, topologies)
        done = store.done(rid)
        specs = [s for s in specs if (s.topology.id, s.replicate) not in done]
    wirings = {t.id: wire(t, arch.orientation, arch.inputs, arch.outputs, seed=config.seed) for t in topologies}
    specs.sort(key=lambda s: wirings[s.topology.id].n_neurons)
    rows: list[dict[str, Any]] = []
    finished = total - len(specs)
    steps = task.x_train.shape[1] if task.sequence else 1
    for chunk in _chunks(specs, wirings, arch, config, steps):
        t0 = time.perf_counter()
        cls = PackedLayered if arch.kind == "layered" else PackedPopulation
        packed = cls([wirings[s.topology.id] for s in chunk], arch, [s.init_seed for s in chunk])
        results = train_pack(packed, task, config)
        seconds = (time.perf_counter() - t0) / len(chunk)
        chunk_rows = []
        all_counts = packed.parameter_counts()
        for s, res, counts in zip(chunk, results, all_counts):
            chunk_rows.append({"topology_id": s.topology.id, "replicate": s.replicate, "init_seed": s.init_seed,
                               **res, "params": counts["total"], "params_graph": counts["graph"],
                               "seconds": seconds})
        if store is not None:
            store.write_results(rid, chunk_rows)
        rows.extend(chunk_rows)
        finished += len(chunk)
        if progress is not None:
            progress(finished, total)
    if store is not None:
        return store.results(rid)
    frame = pd.DataFrame(rows)
    frame.insert(0, "run_id", rid)
    return frame
