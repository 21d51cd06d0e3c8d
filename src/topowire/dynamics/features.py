"""The ``dynamics`` feature group: properties of a compiled recurrent network at initialisation.

Graph features describe the wiring; these describe the dynamical system the wiring becomes
once weights are drawn -- before any training, so a predictor can still use them to rank
topologies without training them:

- ``dyn_max_lyapunov``: the maximal Lyapunov exponent along task input sequences
  (nats per step, mean over sequences; :func:`~topowire.dynamics.lyapunov_spectrum`),
- ``dyn_spectral_radius``: the largest ``|eigenvalue|`` of the masked ``W_hh`` (for gated
  cells, the largest over the gate blocks),
- ``dyn_spectral_norm``: the largest singular value, likewise.

Each topology's network is drawn exactly as the trainer draws its replicate 0 (same wiring
seed, same initialisation seed), so the features belong to the model that was trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from topowire.compiler.arch import Arch
from topowire.compiler.compile import pack
from topowire.data.tasks import Task
from topowire.dynamics.lyapunov import max_lyapunov
from topowire.errors import ParameterError
from topowire.seeds import model_seeds
from topowire.topology.topology import Topology
from topowire.train.stability import recurrent_blocks

__all__ = ["DYNAMICS_FEATURES", "dynamics_features", "dynamics_table"]

DYNAMICS_FEATURES = ("dyn_max_lyapunov", "dyn_spectral_radius", "dyn_spectral_norm")


def dynamics_features(module, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> pd.DataFrame:
    """The dynamics features of a model or of every model of a pack (one row each).

    Parameters
    ----------
    module : MaskedRecurrentNet or PackedPopulation
        Dense masked recurrent models.
    inputs : Tensor [B, T, d_in]; lengths : Tensor [B], optional
        The sequences along which the maximal exponent is measured.
    """
    blocks = recurrent_blocks(module).double()  # [P, G, N, N]
    radius = torch.linalg.eigvals(blocks).abs().amax(dim=(-1, -2))
    norm = torch.linalg.matrix_norm(blocks, ord=2).amax(dim=-1)
    lyap = max_lyapunov(module, inputs, lengths=lengths).reshape(-1)
    return pd.DataFrame({"dyn_max_lyapunov": lyap.numpy(), "dyn_spectral_radius": radius.numpy(),
                         "dyn_spectral_norm": norm.numpy()})


def dynamics_table(topologies: Sequence[Topology], arch: Arch, task: Task, *, seed: int = 0,
                   n_sequences: int = 16, chunk: int = 64, progress=None) -> pd.DataFrame:
    """Dynamics features of every topology at initialisation, indexed by topology id.

    Parameters
    ----------
    topologies : sequence of Topology
        The population.
    arch : Arch
        A recurrent arch (``d_in`` / ``d_out`` are taken from the task).
    task : Task
        A sequence task; its first ``n_sequences`` training sequences drive the dynamics.
    seed : int, default 0
        The training root seed (:class:`~topowire.train.TrainConfig` ``seed``): through
        :func:`~topowire.seeds.init_seed`, each model's wiring and weights.
    chunk : int, default 64
        Models evaluated together.
    progress : callable, optional
        ``progress(done, total)`` after every chunk.
    """
    if not arch.masked_cell:
        raise ParameterError(f"dynamics features need a recurrent arch, got {arch.kind!r}")
    if not task.sequence:
        raise ParameterError(f"dynamics features need a sequence task, got {task.name!r}")
    arch = arch.replace(d_in=task.d_in, d_out=task.d_out, backend="dense")
    unique = list({t.id: t for t in topologies}.values())
    x = task.x_train[:n_sequences]
    lengths = task.len_train[:n_sequences] if task.len_train is not None else None
    if lengths is not None:
        x = x[:, :int(lengths.max())]
    frames = []
    for start in range(0, len(unique), chunk):
        part = unique[start:start + chunk]
        packed = pack(part, arch, [s for _, _, s in model_seeds(seed, [t.id for t in part])])
        frames.append(dynamics_features(packed, x, lengths).set_index(pd.Index([t.id for t in part], name="id")))
        if progress is not None:
            progress(min(start + chunk, len(unique)), len(unique))
    return pd.concat(frames)
