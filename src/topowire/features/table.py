"""Feature tables: every requested feature of every topology (graph features in parallel, with joblib)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from topowire import checks
from topowire.errors import ParameterError
from topowire.features.context import GraphContext
from topowire.features.registry import MODEL_REGISTRY, REGISTRY, model_feature_group, resolve_names
from topowire.topology.topology import Topology

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["compute_features", "feature_table", "feature_ranges"]

# Below this many graphs a process pool costs more than it saves.
_MIN_PARALLEL = 64


def compute_features(topology: Topology, names: Sequence[str] | str | None = None) -> dict[str, float]:
    """The requested features of one topology.

    Parameters
    ----------
    topology : Topology
        The graph.
    names : sequence of str, str or None
        Feature and group names (comma-separated in a string); None for all.
    """
    names = resolve_names(names)
    return dict(zip(names, _row(topology.n, topology.edges, names)))


def _row(n: int, edges: np.ndarray, names: Sequence[str]) -> np.ndarray:
    ctx = GraphContext(n, edges)
    return np.array([REGISTRY[name].fn(ctx) for name in names], dtype=np.float64)


def _rows(chunk: list[tuple[int, np.ndarray]], names: list[str]) -> np.ndarray:
    return np.stack([_row(n, e, names) for n, e in chunk])


def _jobs(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    n_jobs = checks.integer("n_jobs", n_jobs)
    if n_jobs == 0:
        raise ParameterError("n_jobs must be a count of processes (>= 1) or negative (-1: every core), got n_jobs = 0")
    return max(1, cpus + 1 + n_jobs) if n_jobs < 0 else n_jobs


def feature_table(
    population: Iterable[Topology],
    names: Sequence[str] | str | None = None,
    *,
    n_jobs: int | None = 1,
    progress: Callable[[int, int], None] | None = None,
    arch=None,
    task=None,
    seed: int = 0,
) -> pd.DataFrame:
    """A DataFrame of features, one row per topology, indexed by topology id.

    Parameters
    ----------
    population : iterable of Topology
        A :class:`~topowire.topology.Population` or any topologies.
    names : sequence of str, str or None
        Feature and group names, graph or model (``params``, ``dynamics``); None for every
        graph feature.
    n_jobs : int, default 1
        Worker processes; -1 uses every core (joblib convention). Small inputs run in
        this process whatever the value.
    progress : callable, optional
        ``progress(done, total)`` as rows are computed.
    arch : Arch, optional
        The network a model feature is measured on (required for model features).
    task : Task, optional
        The task whose inputs drive the model (required for ``dynamics``).
    seed : int, default 0
        The training seed: model features describe each topology's replicate 0 under it.

    Returns
    -------
    pandas.DataFrame
        One column per name, in the order given (registry order within a group); the index
        is named ``id``, one row per distinct topology in the population's order (a
        topology given twice is one row: its features are a function of its id).
    """

    names = resolve_names(names)
    topologies = list({t.id: t for t in population}.values())
    groups = list(dict.fromkeys(g for g in map(model_feature_group, names) if g))
    for g in groups:
        need = "an arch and a task" if MODEL_REGISTRY[g].needs_task else "an arch"
        if arch is None or (MODEL_REGISTRY[g].needs_task and task is None):
            raise ParameterError(f"the {g} features are measured on the compiled model: they need {need}")
    graph = _graph_table(topologies, [n for n in names if n in REGISTRY], n_jobs, progress)
    for g in groups:
        table = MODEL_REGISTRY[g].table(topologies, arch, task, seed, progress)
        graph = graph.join(table[[n for n in table.columns if n in names]])
    return graph[names]


def _graph_table(topologies: list[Topology], names: list[str], n_jobs, progress) -> pd.DataFrame:
    import pandas as pd

    index = pd.Index([t.id for t in topologies], name="id")
    if not names:
        return pd.DataFrame(index=index)

    items = [(t.n, t.edges) for t in topologies]
    jobs = min(_jobs(n_jobs), max(1, len(items) // _MIN_PARALLEL))
    n_chunks = max(1, min(len(items), jobs * 16))
    bounds = np.linspace(0, len(items), n_chunks + 1).astype(int)
    chunks = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    from joblib import Parallel, delayed, parallel_config

    results: list[np.ndarray] = []
    with parallel_config(backend="loky", inner_max_num_threads=1):  # the pool already uses every core
        for block in Parallel(n_jobs=jobs, return_as="generator")(delayed(_rows)(c, names) for c in chunks):
            results.append(block)
            if progress is not None:
                progress(sum(len(r) for r in results), len(items))
    data = np.concatenate(results) if results else np.zeros((0, len(names)))
    return pd.DataFrame(data, index=index, columns=names)


def feature_ranges(population: Iterable[Topology], names: Sequence[str] = ("avg_clustering", "avg_path_length")
                   ) -> pd.DataFrame:
    """The range (min and max) of features per family of a population: what part of the
    feature space a recipe covers (by default clustering C and average path length L, the
    plane of graph2nn's study)."""
    unique = list({t.id: t for t in population}.values())
    table = feature_table(unique, list(names)).assign(family=[t.family for t in unique])
    ranges = table.groupby("family")[list(names)].agg(["min", "max"])
    ranges.columns = [f"{name} {stat}" for name, stat in ranges.columns]
    return ranges
