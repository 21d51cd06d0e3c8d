"""The first stages of a study: its topologies' features (:func:`model_features`) and a
trained run joined with them (:func:`load_study`, :class:`Study`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from topowire._io import read_table
from topowire.compiler import Arch
from topowire.data import Task
from topowire.errors import ParameterError
from topowire.study.config import Progress
from topowire.topology import Topology
from topowire.train.spec import RunSpec


@dataclass
class Study:
    """One trained run and its topologies' features (see :func:`load_study`).

    Attributes
    ----------
    results : DataFrame
        One row per model (:meth:`topowire.store.Store.results`).
    features : DataFrame
        Features indexed by topology id.
    topologies : dict of str to Topology
        The trained topologies by id.
    spec : RunSpec
        The run: its arch, task (with its sizes) and training config.
    run_id : str
        Its id.
    """

    results: pd.DataFrame
    features: pd.DataFrame
    topologies: dict[str, Topology]
    spec: RunSpec
    run_id: str

    @property
    def table(self) -> pd.DataFrame:
        return study_table(self.results, self.features)

    @property
    def arch(self) -> Arch:
        return self.spec.arch

    @property
    def task(self) -> str:
        return self.spec.task.name

    @property
    def train_seed(self) -> int:
        return self.spec.train.seed

def study_table(results: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """One row per trained model that ended ``ok``, with its topology's features."""
    cols = ["topology_id", "family", "replicate", "status", "test_acc", "test_loss", "params"]
    table = results[cols].join(features.drop(columns=["params"], errors="ignore"), on="topology_id")
    return table[table["status"] == "ok"].reset_index(drop=True)

def model_features(topologies: Sequence[Topology], names: Sequence[str] | None, arch: Arch, *,
                   task: Task | None = None, seed: int = 0, progress: Progress | None = None) -> pd.DataFrame:
    """The features a study's predictor may use, one row per unique topology id: the named
    ones (graph or model features), or every graph feature, ``params`` and the size the arch
    holds fixed where that is another count (``flops``) (``names=None``)."""
    from topowire.features import GROUPS, feature_table

    unique = list({t.id: t for t in topologies}.values())
    bar = (lambda d, t: progress("features", d, t)) if progress else None
    size = arch.target.size_measure(arch)
    every = [*GROUPS, "params", *([size] if size != "params" else [])]
    return feature_table(unique, every if names is None else names, n_jobs=-1, progress=bar,
                         arch=arch, task=task, seed=seed)

def load_study(db: str | Path, run_id: str | None = None, features: str | Path | None = None, *,
               progress: Progress | None = None) -> Study:
    """The results of one run with their topologies' features (computed, or read from a table)."""
    from topowire.store import open_existing

    with open_existing(db) as store:
        run = store.run(run_id)
        results = store.results(run["run_id"])
        topologies = store.topologies(results["topology_id"].unique())
    spec = RunSpec.from_record(run)
    if features is not None:
        table = read_table(features)
        table = table.set_index("id") if "id" in table.columns else table
    else:
        table = model_features([topologies[i] for i in dict.fromkeys(results["topology_id"])], None, spec.arch,
                               seed=spec.train.seed, progress=progress)
    missing = set(results["topology_id"]) - set(table.index)
    if missing:
        raise ParameterError(f"the feature table lacks {len(missing)} trained topologies (e.g. {sorted(missing)[0]})")
    return Study(results, table[~table.index.duplicated()], topologies, spec, run["run_id"])
