"""Training configuration."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from topowire import checks
from topowire.errors import ParameterError
from topowire.limits import limit

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "DATA_ORDERS", "check_device"]

#: Optimizers of :class:`TrainConfig` (one independent optimizer per model of a pack).
OPTIMIZERS = ("adam", "sgd")
#: Learning-rate schedules: constant, or a cosine from ``lr`` to zero over the epochs.
SCHEDULES = ("constant", "cosine")
#: Data orders: every model of a run sees one epoch order, or each replicate its own.
DATA_ORDERS = ("shared", "replicate")
checks.declare("optimizer", checks.Domain("choice", choices=OPTIMIZERS))
checks.declare("schedule", checks.Domain("choice", choices=SCHEDULES))
checks.declare("data_order", checks.Domain("choice", choices=DATA_ORDERS))
#: The protocol options and their defaults: absent from a run's key when at the default, so
#: the ids of runs made before they existed stay valid.
PROTOCOL_DEFAULTS = {"nesterov": False, "weight_decay": 0.0, "schedule": "constant", "standardize": False,
                     "augment": False, "data_order": "shared", "bucket": False}


@dataclass(frozen=True)
class TrainConfig:
    """How a population is trained (frozen; round-trips through JSON).

    Parameters
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
        Shared batch size (every model in a pack sees the same batches).
    lr : float
        Learning rate.
    optimizer : {"adam", "sgd"}
        Adam (betas 0.9, 0.999, eps 1e-8) or SGD with ``momentum``.
    momentum : float
        SGD momentum.
    nesterov : bool
        SGD: Nesterov momentum (``torch.optim.SGD(nesterov=True)``).
    weight_decay : float
        L2 weight decay, coupled: ``weight_decay * w`` is added to every parameter's gradient
        before the optimizer's step, as ``torch.optim.SGD`` and ``Adam`` do (not AdamW's
        decoupled decay); 0: off.
    schedule : {"constant", "cosine"}
        The learning rate per epoch: constant, or ``lr * (1 + cos(pi * epoch / epochs)) / 2``
        (``CosineAnnealingLR(T_max=epochs)`` stepped once per epoch, graph2nn's schedule).
    standardize : bool
        Image tasks: standardise inputs per channel with the training set's mean and
        standard deviation (graph2nn's input normalisation).
    augment : bool
        Image tasks: every training batch randomly cropped after zero padding by an eighth
        of the side (4 pixels of 32, 3 of 28) and flipped left-right with probability 1/2,
        drawn from the data stream's seed (graph2nn's CIFAR augmentation).
    data_order : {"shared", "replicate"}
        ``shared`` (the default): every model of a run sees the same epoch orders (and
        augmentations), so replicates differ by their initialisation alone; ``replicate``:
        each replicate has its own data stream (packs then hold one replicate each), as
        graph2nn's seeds do.
    bucket : bool
        Sequence tasks: batches of similar lengths, so few padded steps are computed. Each
        epoch's seeded order is cut into pools of :data:`~topowire.train.batches.BUCKET_POOL` batches, each pool
        sorted by length (ties in the seeded order) and cut into batches, and the batches
        shuffled with the same stream: every example once per epoch.
    clip : float or None
        Per-model gradient-norm clipping (as ``torch.nn.utils.clip_grad_norm_`` on each
        model alone); 0 or None: off.
    replicates : int
        Initialisation seeds per topology, trained in the same pack on the same data.
    seed : int
        Root seed: data order, data sampling and every model's initialisation.
    device : str
        ``auto`` (CUDA when this torch sees a GPU, else the CPU), ``cpu`` or ``cuda``
        (``cuda:1``, ...). Not part of a run's identity: a run resumes on either.
    bf16 : bool
        bf16 autocast for the forward pass (CUDA only).
    memory_mb : int or None
        Budget (MiB) for one pack's parameters, optimizer state and activations; the
        population is cut into packs that fit. At most the memory limit
        (``TOPOWIRE_MAX_MEMORY_MB``, see :mod:`topowire.limits`). Unset (the default): on a
        CUDA device a quarter of its free memory (a GPU idles on launches when packs are
        small), on the CPU 1,024 MiB (or the memory limit, if lower).
    chunk_size : int or None
        Fixed models per pack (overrides the memory budget).
    diverge_loss : float
        A model whose loss is not finite or exceeds this is frozen and flagged diverged.
    fused : bool
        Run each time step of a dense recurrent forward as one ``torch.compile`` program (see
        :func:`~topowire.compiler.functional.fused_steps`); falls back to eager where
        compiling fails. Results equal the eager path to float rounding (not part of the run id).
    sub_pack : int or None
        On the CPU, the models of a pack whose time loop runs together (a sub-pack; the pack
        keeps one data pass and one optimizer step per batch): None (the default) sizes it
        to the L2 cache on the torch path and runs the whole pack in one kernel call on the
        sequence kernels, which run its models one after another already
        (:func:`~topowire.compiler.functional.sub_pack_size`); 0 runs the whole pack as one
        program. Results are the same (not part of the run id).
    stability : float or None
        Miller & Hardt's stable models: after initialisation and after every optimizer
        step, each model's masked ``W_hh`` (every gate block of it) is rescaled to spectral
        norm <= ``stability`` (see :mod:`topowire.train.stability`). Recurrent archs only.
    """

    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-2
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    standardize: bool = False
    augment: bool = False
    data_order: str = "shared"
    bucket: bool = False
    clip: float | None = 5.0
    replicates: int = 1
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    memory_mb: int | None = None
    chunk_size: int | None = None
    diverge_loss: float = 1e6
    stability: float | None = None
    fused: bool = False
    sub_pack: int | None = None

    def __post_init__(self) -> None:
        checks.validate(self)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ParameterError(f"nesterov needs optimizer sgd with momentum > 0, got optimizer {self.optimizer!r} "
                                 f"and momentum {self.momentum:g}")
        if self.clip == 0:
            object.__setattr__(self, "clip", None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ParameterError(f"unknown training option(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def run_key(self) -> dict[str, Any]:
        """The options that change results (not where or how much at once)."""
        d = self.to_dict()
        for k in ("device", "memory_mb", "chunk_size", "fused", "sub_pack"):
            d.pop(k)
        if d["stability"] is None:  # absent when unused: run ids from before the option stay valid
            d.pop("stability")
        for name, default in PROTOCOL_DEFAULTS.items():
            if d[name] == default:
                d.pop(name)
        return d

    def lr_factor(self, epoch: int) -> float:
        """The schedule's multiple of ``lr`` in ``epoch`` (0-based)."""
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        return 1.0

    def data_stream(self, replicate: int) -> tuple[int, ...]:
        """The key of the data stream (epoch orders, augmentations) a replicate's models see:
        ``(seed,)`` shared by all, or ``(seed, replicate)`` with ``data_order="replicate"``."""
        return (self.seed,) if self.data_order == "shared" else (self.seed, int(replicate))

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.run_key(), sort_keys=True).encode()).hexdigest()[:12]


#: Share of a CUDA device's free memory one pack may take when ``memory_mb`` is not given.
GPU_PACK_SHARE = 0.25
#: MiB one pack may take on the CPU when ``memory_mb`` is not given (or the memory limit, if lower).
CPU_PACK_MB = 1024


def pack_budget(memory_mb: int | None, device_free_bytes: int | None) -> int:
    """Bytes one pack may take: ``memory_mb`` when given; else ``GPU_PACK_SHARE`` of a CUDA
    device's free memory (``device_free_bytes``), or on the CPU (``None``) ``CPU_PACK_MB`` within
    the memory limit."""
    if memory_mb is not None:
        return memory_mb * 2**20
    if device_free_bytes is not None:
        return int(device_free_bytes * GPU_PACK_SHARE)
    return min(CPU_PACK_MB, limit("memory")) * 2**20


def device_free_bytes(device: str) -> int | None:
    """Free memory of ``device`` if it is a CUDA device (``auto`` resolved), else ``None``."""
    import torch

    resolved = check_device(device)
    return torch.cuda.mem_get_info(torch.device(resolved))[0] if resolved.startswith("cuda") else None


def check_device(device: str) -> str:
    """``device`` if this torch can use it (``auto``: ``cuda`` when it sees a GPU, else
    ``cpu``), else one ParameterError saying why."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device {device!r} is not available: this torch ({torch.__version__}) sees no CUDA "
                                 "GPU; use --device cpu")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ParameterError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} "
                                 "CUDA device(s)")
    return device
