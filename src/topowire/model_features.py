"""The model feature groups (registered on import): ``params``, ``flops``, ``dynamics`` and ``init``.

They live beside the study, not among the graph features: they build the networks.

Both describe the network the trainer builds for a topology's replicate 0 under the
training seed (:func:`~topowire.seeds.init_seed`), so they belong to the model that was
trained, and all need the arch; ``dynamics`` and ``init`` also need the task, whose data
drive them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from topowire.features.registry import ModelGroup, register_model_group
from topowire.topology.topology import Topology

__all__ = ["params_table"]


def _counts_table(topologies: Sequence[Topology], arch, seed: int, progress, key: str, column: str) -> pd.DataFrame:
    """One count of :meth:`~topowire.compiler.targets.Target.parameter_counts` per topology's model."""
    from topowire.compiler.compile import model_parameter_counts
    from topowire.errors import ParameterError
    from topowire.seeds import model_seeds

    out = []
    seeds = {t: s for t, _, s in model_seeds(seed, [t.id for t in topologies])}
    for i, t in enumerate(topologies):
        counts = model_parameter_counts(t, arch, seeds[t.id])
        if key not in counts:
            raise ParameterError(f"the {arch.kind} target does not count {column}")
        out.append(counts[key])
        if progress is not None and (i + 1) % 64 == 0:
            progress(i + 1, len(topologies))
    return pd.DataFrame({column: out}, index=pd.Index([t.id for t in topologies], name="id"))


def params_table(topologies: Sequence[Topology], arch, task=None, seed: int = 0, progress=None) -> pd.DataFrame:
    """``params``: the effective parameter count (mask non-zeros) of every topology's model."""
    return _counts_table(topologies, arch, seed, progress, "total", "params")


def _flops_table(topologies, arch, task=None, seed: int = 0, progress=None) -> pd.DataFrame:
    return _counts_table(topologies, arch, seed, progress, "flops", "flops")


def _dynamics_table(topologies, arch, task, seed: int = 0, progress=None) -> pd.DataFrame:
    from topowire.dynamics.features import dynamics_table

    return dynamics_table(topologies, arch, task, seed=seed, progress=progress)


register_model_group(ModelGroup("params", {"params": "effective parameters of the compiled model (mask non-zeros)"},
                                params_table))
register_model_group(ModelGroup("flops", {"flops": "multiply-accumulates per example of the compiled model's linear "
                                                   "layers, masked ones by their non-zeros (graph2nn's count; "
                                                   "relational target)"}, _flops_table))
register_model_group(ModelGroup("dynamics", {
    "dyn_max_lyapunov": "maximal Lyapunov exponent at initialisation along task sequences (nats per step)",
    "dyn_spectral_radius": "largest |eigenvalue| of the masked W_hh at initialisation (largest gate block)",
    "dyn_spectral_norm": "largest singular value of the masked W_hh at initialisation (largest gate block)",
}, _dynamics_table, needs_task=True))


def _init_table(topologies, arch, task, seed: int = 0, progress=None) -> pd.DataFrame:
    from topowire.train.proxies import init_proxies

    return init_proxies(topologies, arch, task, seed=seed, progress=progress)


register_model_group(ModelGroup("init", {
    "init_loss": "loss on the first 64 training examples at initialisation",
    "init_grad_norm": "norm of that loss's gradient over all the model's parameters, at initialisation",
}, _init_table, needs_task=True))
