"""Training packed populations (DESIGN §5).

A population is cut into packs; each pack is one tensor program: a shared batch, one
forward pass for all models, loss = sum of the models' mean losses (so every model's
gradient is its own), per-model clipping, P independent optimizers. A model whose loss
stops being finite is frozen (its parameters are restored after every step) and
flagged ``diverged``; the others are untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from topowire.compiler.arch import Arch
from topowire.compiler.compile import model_parameter_counts, pack
from topowire.compiler.functional import fused_steps, reads_are_free, sub_packs
from topowire.compiler.pack import PackOfOne
from topowire.compiler.sequence import reused_buffers
from topowire.data.tasks import Task, make_task
from topowire.data.transforms import augment, standardized
from topowire.seeds import model_seeds
from topowire.topology.topology import Topology
from topowire.train.batches import epoch_batches
from topowire.train.config import TrainConfig, check_device, device_free_bytes, pack_budget
from topowire.train.executors import Executor, get_executor
from topowire.train.heap import kept_heap, paused_gc
from topowire.train.losses import per_model_correct, per_model_loss, step_mask
from topowire.train.optim import StackedAdam, StackedSGD, clip_per_model
from topowire.train.spec import RunSpec, prepare_arch
from topowire.train.stability import project_stable

__all__ = [
    "ModelSpec",
    "PackJob",
    "estimate_model_bytes",
    "evaluate_module",
    "model_specs",
    "pack_jobs",
    "prepare_arch",
    "run_id",
    "train_module",
    "train_pack",
    "train_population",
]


@dataclass(frozen=True)
class ModelSpec:
    """One model to train: a topology, a replicate index and its initialisation seed."""

    topology: Topology
    replicate: int
    init_seed: int


#: A pack's widest model is at most this many times its narrowest (see ``_chunks``).
MAX_PADDING = 1.2


@dataclass(frozen=True)
class PackJob:
    """One pack to train: its models, the arch and the training config -- everything a
    worker needs besides the task's data. ``run(task)`` trains it and returns its rows.

    With ``keep_weights`` every row also holds the model's final weights (``weights``: its
    state dict as safetensors bytes), so a model can be exported without training it again.
    """

    specs: tuple[ModelSpec, ...]
    arch: Arch
    config: TrainConfig
    keep_weights: bool = False

    def run(self, task: Task, on_step: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        """Build the pack (model p exactly as ``compile(topology, arch, seed=init_seed)``),
        train it and return one row per model (``on_step()`` after each training step)."""
        t0 = time.perf_counter()
        packed = pack([s.topology for s in self.specs], self.arch, [s.init_seed for s in self.specs])
        results = train_pack(packed, task, self.config, on_step=on_step,
                             stream=self.config.data_stream(self.specs[0].replicate))
        seconds = (time.perf_counter() - t0) / len(self.specs)
        rows = [{"topology_id": s.topology.id, "replicate": s.replicate, "init_seed": s.init_seed, **res,
                 "params": counts["total"], "params_graph": counts["graph"], "seconds": seconds}
                for s, res, counts in zip(self.specs, results, packed.parameter_counts())]
        if self.keep_weights:
            from safetensors.torch import save

            for p, row in enumerate(rows):
                state = packed.unpack(p).state_dict()
                row["weights"] = save({k: v.detach().contiguous().cpu() for k, v in state.items()})
        return rows

    def failed_rows(self, error: str) -> list[dict[str, Any]]:
        """One ``failed`` row per model, with the error (a pack that could not be trained)."""
        rows = []
        for s in self.specs:
            counts = model_parameter_counts(s.topology, self.arch, s.init_seed)
            rows.append({"topology_id": s.topology.id, "replicate": s.replicate, "init_seed": s.init_seed,
                         "status": "failed", "diverged_epoch": None, "train_loss": None, "test_loss": None,
                         "test_acc": None, "curves": {}, "params": counts["total"], "params_graph": counts["graph"],
                         "seconds": 0.0, "error": error})
        return rows


def model_specs(topologies: Sequence[Topology], config: TrainConfig, replicates: int | None = None) -> list[ModelSpec]:
    """Every (topology, replicate) of a population with its seed (a repeated topology once):
    ``config.replicates`` of each, or the first ``replicates`` (1: the model features describe)."""
    by_id = {t.id: t for t in topologies}
    return [ModelSpec(by_id[t], r, seed)
            for t, r, seed in model_seeds(config.seed, by_id, config.replicates if replicates is None else replicates)]


def run_id(arch: Arch, task: Task, config: TrainConfig) -> str:
    """The name of a run (:meth:`~topowire.train.spec.RunSpec.run_id`)."""
    return RunSpec.of(arch, task, config).run_id(task)


def estimate_model_bytes(n: int, arch: Arch, batch: int, steps: int) -> int:
    """Rough bytes one padded model of width n needs in a pack while training (its target's
    estimate, :meth:`~topowire.compiler.targets.Target.train_bytes`)."""
    return arch.target.train_bytes(n, arch, batch, steps)


def _autocast(config: TrainConfig):
    if config.bf16 and config.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def task_forward(packed: nn.Module, task: Task, x: Tensor, lengths: Tensor | None) -> Tensor:
    if not task.sequence:
        return packed(x)
    return packed(x, lengths, all_steps=task.per_step)


def task_losses(packed: nn.Module, task: Task, x: Tensor, y: Tensor, lengths: Tensor | None,
                mask: Tensor | None) -> Tensor:
    """Every model's mean training loss on a batch, ``[P]``: computed by the pack's target with
    its backward where it has such a path (:meth:`~topowire.compiler.targets.Target.losses`:
    the recurrent kernels' classification or regression), else its outputs scored."""
    if task.sequence and not task.per_step:
        losses = packed.arch.target.losses(packed, x, lengths, y, task.objective)
        if losses is not None:
            return losses
    return per_model_loss(task_forward(packed, task, x, lengths), y, task.objective, mask)


def task_batch(task: Task, split: str, idx, device) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The examples ``idx`` of ``split`` on ``device``: inputs, targets, lengths and the per-step
    mask. Sequences are ordered longest first (a stable sort), so those still running at any
    step are a prefix of the batch, which the recurrent products alone compute."""
    x, y, lengths = (task.x_train, task.y_train, task.len_train) if split == "train" else \
        (task.x_test, task.y_test, task.len_test)
    host = None if lengths is None else lengths[idx]
    if host is not None:
        order = torch.argsort(host, descending=True, stable=True)
        idx, host = idx[order], host[order]
    xb, yb = x[idx].to(device), y[idx].to(device)
    lb = host.to(device) if host is not None else None
    if lb is not None:
        t = int(host.numpy().max())  # from the host's copy: no read from the device
        xb = xb[:, :t]
        if task.per_step:
            yb = yb[:, :t]
    mask = step_mask(lb, xb.shape[1]) if (lb is not None and task.per_step) else None
    return xb, yb, lb, mask


@torch.no_grad()
def _evaluate(packed: nn.Module, task: Task, config: TrainConfig, device) -> tuple[Tensor, Tensor]:
    """Test loss and accuracy of every model, in evaluation mode (BatchNorm's running statistics)."""
    training = packed.training
    packed.eval()
    try:
        return _test_scores(packed, task, config, device)
    finally:
        packed.train(training)


def _test_scores(packed: nn.Module, task: Task, config: TrainConfig, device) -> tuple[Tensor, Tensor]:
    n = len(task.y_test)
    p = len(packed)
    loss_sum = torch.zeros(p, device=device)
    correct = torch.zeros(p, device=device)
    step = max(config.batch_size, 512)
    for start in range(0, n, step):
        idx = torch.arange(start, min(n, start + step))
        xb, yb, lb, mask = task_batch(task, "test", idx, device)
        with _autocast(config):
            out = task_forward(packed, task, xb, lb)
        loss_sum += per_model_loss(out, yb, task.objective, mask) * len(idx)
        correct += per_model_correct(out, yb, task.objective, mask)
    return loss_sum / n, correct / n


def train_pack(packed: nn.Module, task: Task, config: TrainConfig, *, lr: float | Tensor | None = None,
               on_step: Callable[[], None] | None = None,
               stream: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Train one pack in place; return one result dict per model.

    The one training loop of topowire: a pack of P models (or one model as
    :class:`~topowire.compiler.pack.PackOfOne`, see :func:`train_module`) on shared batches,
    loss = the sum of the models' mean losses, per-model clipping, stacked optimizers.

    Parameters
    ----------
    packed : PackedPopulation, PackedLayered or PackOfOne
        The models (their ``arch.d_in`` / ``d_out`` must match the task).
    task : Task
        The data.
    config : TrainConfig
        Options; ``lr`` may be overridden per model by ``lr`` (a ``[P]`` tensor).
    stream : tuple of int, optional
        The data stream's key (epoch orders, augmentations): every model of the pack sees
        it. Default: replicate 0's, :meth:`TrainConfig.data_stream`.
    """
    if config.device == "auto":
        config = config.replace(device=check_device(config.device))
    device = torch.device(config.device)
    packed.to(device)
    lead = getattr(packed, "stacked", False)
    params = [t for t in packed.parameters() if t.requires_grad]
    rate = config.lr if lr is None else lr
    opt = (StackedAdam(params, rate, weight_decay=config.weight_decay, stacked=lead) if config.optimizer == "adam"
           else StackedSGD(params, rate, config.momentum, config.nesterov, config.weight_decay, stacked=lead))
    if config.stability is not None:
        project_stable(packed, config.stability)
    with fused_steps(config.fused), sub_packs(config.sub_pack), kept_heap(), reused_buffers(), paused_gc():
        return _train_epochs(packed, prepared_task(task, config), config, opt, rate, params, lead, device, on_step,
                             config.data_stream(0) if stream is None else tuple(stream))


def prepared_task(task: Task, config: TrainConfig) -> Task:
    """The task as the models see it: standardised when ``config.standardize``."""
    return standardized(task) if config.standardize else task


def _per_model(mask: Tensor, like: Tensor) -> Tensor:
    """A ``[P]`` mask shaped to broadcast over a ``[P, ...]`` tensor."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def _train_epochs(packed, task, config, opt, rate, params, lead, device, on_step, stream) -> list[dict[str, Any]]:
    """The epochs of :func:`train_pack` (inside its fused-steps switch).

    Nothing in a step reads a tensor back to Python on a GPU (no host-device
    synchronisation): a model that diverges is masked out on the device -- its parameters
    are taken as they were before the step that diverged and put back after every later
    step -- and the losses, accuracies and epochs of divergence are read once per epoch. On
    the CPU, where a read costs nothing, the two passes over every parameter that this takes
    run only once a model has diverged.
    """
    p = len(packed)
    reads_free = reads_are_free(device)
    alive = torch.ones(p, dtype=torch.bool, device=device)
    diverged = torch.full((p,), -1, dtype=torch.long, device=device)  # the epoch each model diverged in
    weights = [t if lead else t[None] for t in packed.parameters()]  # [P, ...] views
    frozen = [torch.empty_like(t) for t in weights]  # a diverged model's parameters, as they were
    curves: dict[str, list[list[float]]] = {"train_loss": [[] for _ in range(p)], "test_loss": [[] for _ in range(p)],
                                            "test_acc": [[] for _ in range(p)]}
    n = len(task.y_train)
    packed.train()
    for epoch in range(config.epochs):
        batches = epoch_batches(n, config.batch_size, (*stream, epoch), task.len_train, config.bucket)
        if config.schedule != "constant":
            opt.lr = rate * config.lr_factor(epoch)
        loss_sum = torch.zeros(p, device=device)
        for step, idx in enumerate(batches):
            xb, yb, lb, mask = task_batch(task, "train", idx, device)
            if config.augment:
                xb = augment(xb, task.image, (*stream, epoch, step * config.batch_size))
            with _autocast(config):
                losses = task_losses(packed, task, xb, yb, lb, mask)
            bad = (~torch.isfinite(losses) | (losses > config.diverge_loss)) & alive
            with torch.no_grad():
                for t, f in zip(weights, frozen) if not reads_free or bool(bad.any()) else ():
                    f.copy_(torch.where(_per_model(bad, t), t, f))
            diverged = torch.where(bad, epoch, diverged)
            alive &= ~bad
            total = torch.where(alive, losses, torch.zeros_like(losses)).sum()
            opt.zero_grad()
            total.backward()
            if config.clip is not None:
                clip_per_model(params, config.clip, stacked=lead)
            opt.step()
            if config.stability is not None:
                project_stable(packed, config.stability, alive)
            with torch.no_grad():
                for t, f in zip(weights, frozen) if not reads_free or not bool(alive.all()) else ():
                    t.copy_(torch.where(_per_model(alive, t), t, f))
            loss_sum += torch.where(alive, losses.detach(), torch.zeros_like(losses)) * len(idx)
            if on_step is not None:
                on_step()
        test_loss, test_acc = _evaluate(packed, task, config, device)
        ok = alive.tolist()  # the epoch's reads from the device: four, whatever the steps
        for name, values in (("train_loss", (loss_sum / n).tolist()), ("test_loss", test_loss.tolist()),
                             ("test_acc", test_acc.tolist())):
            for i in range(p):
                curves[name][i].append(values[i] if ok[i] else float("nan"))
    diverged_at = [None if e < 0 else e for e in diverged.tolist()]
    results = []
    for i in range(p):
        if diverged_at[i] is None and not math.isfinite(curves["test_loss"][i][-1]):
            diverged_at[i] = config.epochs - 1  # finite while training, not on the test set
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


def train_module(module: nn.Module, task: Task, config: TrainConfig) -> dict[str, Any]:
    """Train one standalone module in place (any compiled module, the layered form too).

    :func:`train_pack` on a pack of one: the same batches, loss, optimizer, clipping,
    divergence rule and stability projection, so a model trained alone and the same model
    trained in a pack end with the same weights. Returns the final losses and accuracy,
    the status and the per-epoch curves.
    """
    return train_pack(PackOfOne(module), task, config)[0]


def evaluate_module(module: nn.Module, task: Task, config: TrainConfig | None = None) -> dict[str, float]:
    """Test loss and accuracy of one standalone module."""
    config = config or TrainConfig()
    device = torch.device(check_device(config.device))
    loss, acc = _evaluate(PackOfOne(module).to(device), prepared_task(task, config), config, device)
    return {"test_loss": float(loss[0]), "test_acc": float(acc[0])}


def _chunks(specs: list[ModelSpec], arch: Arch, config: TrainConfig, steps: int,
            widths: dict[str, int]) -> list[list[ModelSpec]]:
    """Cut width-sorted models into packs: ``chunk_size`` each, or as many as fit the memory
    budget (the last model added is the widest, so it sets the pack's padded width) while
    the widest stays within ``MAX_PADDING`` times the narrowest (padding is wasted work);
    ``widths`` by topology id (the target's :meth:`~topowire.compiler.targets.Target.model_width`)."""
    if config.chunk_size is not None:
        return [specs[i:i + config.chunk_size] for i in range(0, len(specs), config.chunk_size)]
    budget = pack_budget(config.memory_mb, device_free_bytes(config.device) if config.memory_mb is None else None)
    chunks: list[list[ModelSpec]] = []
    for s in specs:
        width = widths[s.topology.id]
        per = estimate_model_bytes(max(width, s.topology.n), arch, config.batch_size, steps)
        narrowest = widths[chunks[-1][0].topology.id] if chunks else 0
        if chunks and (len(chunks[-1]) + 1) * per <= budget and width <= MAX_PADDING * narrowest:
            chunks[-1].append(s)
        else:
            chunks.append([s])
    return chunks


def pack_jobs(topologies: Sequence[Topology], arch: Arch, task: Task, config: TrainConfig,
              done: set[tuple[str, int]] = frozenset()) -> list[PackJob]:
    """The population as pack jobs: every (topology, replicate) not in ``done``, sorted by
    width and cut into packs (see ``_chunks``)."""
    return pack_jobs_of([s for s in model_specs(topologies, config) if (s.topology.id, s.replicate) not in done],
                        arch, task, config)


def pack_jobs_of(specs: Sequence[ModelSpec], arch: Arch, task: Task, config: TrainConfig) -> list[PackJob]:
    """Models cut into pack jobs: sorted by width, in packs that fit the memory budget; with
    ``data_order="replicate"`` a pack holds one replicate (one data stream)."""
    steps = task.x_train.shape[1] if task.sequence else 1
    streams = sorted({config.data_stream(s.replicate) for s in specs})
    widths = {s.topology.id: arch.target.model_width(s.topology, arch) for s in specs}
    return [PackJob(tuple(chunk), arch, config) for key in streams
            for chunk in _chunks(sorted((s for s in specs if config.data_stream(s.replicate) == key),
                                        key=lambda s: widths[s.topology.id]), arch, config, steps, widths)]


#: Seconds between looks at the store while other processes hold the last models of a run.
POLL_SECONDS = 0.5


def _claimed_jobs(claims, rid: str, topologies: Sequence[Topology], arch: Arch, task: Task,
                  config: TrainConfig) -> Iterator[PackJob]:
    """Pack jobs claimed in the store one at a time (``claims``, :class:`topowire.claims.Claims`),
    until every model of the run is done.

    Each job is the first pack of what is neither done nor claimed by a live owner; when
    other processes hold all that is left, wait for their results -- or for their claims
    to expire, and take those models over.
    """
    specs = model_specs(topologies, config)
    all_models = {(s.topology.id, s.replicate) for s in specs}

    def first_pack(taken: set[tuple[str, int]]) -> tuple[PackJob | None, list[tuple[str, int]]]:
        jobs = pack_jobs_of([s for s in specs if (s.topology.id, s.replicate) not in taken], arch, task, config)
        return (jobs[0], [(s.topology.id, s.replicate) for s in jobs[0].specs]) if jobs else (None, [])

    while True:
        job = claims.claim(rid, first_pack)
        if job is not None:
            yield job
        elif all_models <= claims.store.done(rid) | claims.held(rid):
            return  # done, or the rest is this process's own packs in flight: the executor collects them
        else:
            time.sleep(POLL_SECONDS)


def train_population(
    topologies: Sequence[Topology],
    arch: Arch,
    task: Task | str,
    config: TrainConfig,
    *,
    store=None,
    progress: Callable[[int, int], None] | None = None,
    task_options: dict[str, Any] | None = None,
    executor: str | Executor = "local",
    keep_weights: bool = False,
    log: Callable[[str], None] | None = None,
):
    """Train every (topology, replicate) and return one row per model (pandas).

    The population becomes a list of :class:`PackJob` (one pack each), handed to an
    executor that yields each pack's rows as it finishes; the store (written here, by the
    driver alone) commits them pack by pack. With a store, packs are claimed there one at
    a time before they run, so any number of processes can train one run together: none
    trains a model twice, each returns when the whole run is done, and the models of a
    process that died are taken over once its claims expire.

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
    store : topowire.store.Store or path, optional
        Results are committed there pack by pack, and models already done for this run
        are skipped (resume). A path is opened (or created) only once the arch, the task
        and the config are known to go together.
    progress : callable, optional
        ``progress(done, total)`` in models: after every training step but the last of a pack
        that runs in this process (``done`` then counts the pack's models in part, by the steps
        taken), and after every pack's rows are stored (only then is a pack counted whole).
    executor : str or Executor, default "local"
        Where packs run (see :mod:`topowire.train.executors`).
    keep_weights : bool, default False
        Keep every model's final weights: in the store (``Store.weights``), or in the
        frame's ``weights`` column (safetensors bytes) without one.
    log : callable, optional
        ``log(line)`` once when the store holds some of the population's models: it resumes.

    Returns
    -------
    pandas.DataFrame
        One row per model: topology id, replicate, seed, status, final losses and accuracy, effective
        parameters, seconds (the pack's wall time shared), the per-epoch curves. With a store: the whole run.
    """
    import pandas as pd

    from topowire.claims import Claims, claim_ttl
    from topowire.store import Store

    config = config.replace(device=check_device(config.device))  # "auto" made concrete: the packs see one device
    if isinstance(task, str):
        task = make_task(task, seed=config.seed, **(task_options or {}))
    spec = RunSpec.of(arch, task, config)
    arch, rid = spec.arch, spec.run_id(task)
    topologies = list(topologies)
    total = _check_sizes(topologies, arch, task, config)
    path = isinstance(store, (str, os.PathLike)) and claim_ttl() > 0  # its variable checked before the store opens
    with Store(store) if path else contextlib.nullcontext(store) as opened:
        mine = {(s.topology.id, s.replicate) for s in model_specs(topologies, config)}  # a store may hold more
        claims = Claims(opened) if opened is not None else None
        jobs, finished = _jobs(claims, spec, rid, topologies, task, config, mine, keep_weights)
        if finished and log is not None:
            log(_resume_line(rid, finished, total))
        rows = _run_jobs(jobs, task, config, executor, claims, rid, mine, finished, total, progress)
        if opened is not None:
            return opened.results(rid)
    frame = pd.DataFrame(rows)
    frame.insert(0, "run_id", rid)
    return frame


def _check_sizes(topologies: Sequence[Topology], arch: Arch, task: Task, config: TrainConfig) -> int:
    """The run's model count, once it and its widest model are known to fit their limits."""
    from topowire import limits

    total = limits.check("models", len({t.id for t in topologies}) * config.replicates, "topologies x replicates")
    widest = max(topologies, key=lambda t: t.n, default=None)
    if widest is not None:  # one model alone must fit the memory limit
        steps = task.x_train.shape[1] if task.sequence else 1
        limits.check_memory(estimate_model_bytes(widest.n, arch, config.batch_size, steps),
                            f"training a {arch.kind} model of {widest.n:,} neurons at batch {config.batch_size}")
    return total


def _jobs(claims, spec: RunSpec, rid: str, topologies, task: Task, config: TrainConfig, mine: set,
          keep_weights: bool) -> tuple[Iterable[PackJob], int]:
    """The run's pack jobs (claimed in the store one at a time, with ``claims`` on one) and how
    many of the population's models (``mine``) the store holds already."""
    if claims is None:
        jobs: Iterable[PackJob] = pack_jobs(topologies, spec.arch, task, config)
        finished = 0
    else:
        claims.store.ensure_run(rid, spec, topologies)
        jobs = _claimed_jobs(claims, rid, topologies, spec.arch, task, config)
        finished = len(claims.store.done(rid) & mine)
    return ((dataclasses.replace(job, keep_weights=True) for job in jobs) if keep_weights else jobs), finished


def _resume_line(rid: str, finished: int, total: int) -> str:
    if finished == total:
        return f"run {rid}: all {total} models of this population are trained already; nothing to train"
    return f"resuming run {rid}: {finished} of this population's {total} models are trained, {total - finished} left"


def _run_jobs(jobs, task, config, executor, claims, rid, mine, finished, total, progress) -> list[dict[str, Any]]:
    """Run the pack jobs on the executor and return their rows; with a store, each pack's rows
    are committed as it finishes (``claims`` on the store kept alive meanwhile).
    ``progress(done, total)`` counts ``finished`` and then the population's models stored (a
    pack in part, by its steps, while it trains)."""
    if progress is not None:
        progress(finished, total)
    rows: list[dict[str, Any]] = []
    steps = config.epochs * math.ceil(len(task.y_train) / config.batch_size)  # training steps of one pack
    taken: dict[int, int] = {}  # steps taken by each pack in progress

    def on_step(job: PackJob) -> None:
        taken[id(job)] = t = taken.get(id(job), 0) + 1
        if t < steps:  # a pack shows whole once its rows are stored, not at its last step
            progress(finished + len(job.specs) * t / steps, total)

    store = claims.store if claims is not None else None
    with claims.heartbeat() if claims is not None else contextlib.nullcontext():
        for job, job_rows in get_executor(executor).map(jobs, task, on_step=on_step if progress is not None else None):
            taken.pop(id(job), None)
            if store is not None:
                store.write_results(rid, job_rows)
                finished = len(store.done(rid) & mine)
            else:
                finished += len(job_rows)
            rows.extend(job_rows)
            if progress is not None:
                progress(finished, total)
    return rows


def results_line(results) -> str:
    """One line on a run's results (:func:`train_population`'s frame): how many models ended
    ok, diverged or failed, and the mean test accuracy of those ok (or that none is)."""
    status = results["status"].value_counts()
    accuracy = results.loc[results["status"] == "ok", "test_acc"].mean()
    return (f"{len(results)} models in run {results['run_id'].iloc[0]}: {status.get('ok', 0)} ok, "
            f"{status.get('diverged', 0)} diverged, {status.get('failed', 0)} failed; "
            + (f"mean test accuracy {accuracy:.3f}" if status.get("ok", 0) else "no model trained ok"))
