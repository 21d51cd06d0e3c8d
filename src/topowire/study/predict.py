"""The predict stage: a fitted predictor's predictions for a population or a table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from topowire._io import read_table
from topowire.compiler import Arch
from topowire.errors import DataError, ParameterError
from topowire.study.load import model_features
from topowire.topology import Population
from topowire.train.spec import RunSpec


def predict_population(predictor, source: str | Path | Population | pd.DataFrame) -> pd.DataFrame:
    """Predictions and intervals for a population (its features computed as the predictor
    needs them) or a table (its other columns carried through); see :func:`topowire.predict.predict`.

    A path is read as a population when it is a ``.jsonl`` file, a graph file or a folder
    of them (:func:`~topowire.topology.read_population`), else as a table. The predictions
    of graphs read from files keep the file's name (a ``source`` column beside the id)."""
    from topowire.predict import predict
    from topowire.topology import GRAPH_FORMATS, read_population

    if isinstance(source, (str, Path)) and (Path(source).is_dir()
                                            or Path(source).suffix.lower() in (".jsonl", *GRAPH_FORMATS)):
        source = read_population(source)
    if isinstance(source, Population):
        from topowire.features.registry import MODEL_REGISTRY, model_feature_group

        groups = {model_feature_group(f) for f in predictor.features} - {None}
        spec = _predictor_run(predictor)
        if groups and spec is None:
            needs_run = [f for f in predictor.features if model_feature_group(f)]
            raise ParameterError(f"the predictor uses {', '.join(needs_run)} but records no run to build the models")
        task = spec.task.build() if any(MODEL_REGISTRY[g].needs_task for g in groups) else None
        table = model_features(list(source), predictor.features, spec.arch if spec else Arch(), task=task,
                               seed=spec.train.seed if spec else 0)
        names = {t.id: t.params["source"] for t in source if "source" in t.params}
        if names:
            return predict(predictor, table).assign(source=lambda f: [names.get(i, "") for i in f.index])
    else:
        table = source if isinstance(source, pd.DataFrame) else read_table(source)
        table = table.set_index("id") if "id" in table.columns else table
        from topowire.features.registry import model_feature_group

        missing = [f for f in predictor.features if f not in table.columns]
        built = [f for f in missing if model_feature_group(f)]
        if built:
            raise DataError(f"the table lacks the predictor's feature(s) {', '.join(missing)} ({', '.join(built)}: "
                            "features of the compiled networks; predict from the population's .jsonl instead, "
                            "which computes them with the predictor's arch)")
    return predict(predictor, table)

def _predictor_run(predictor) -> RunSpec | None:
    """The run a predictor was fitted on (None for one fitted on a table)."""
    meta = predictor.meta
    if "run" in meta:
        return RunSpec.from_dict(meta["run"])
    if "arch" in meta:  # a predictor of release 0.1
        return RunSpec.from_release_0_1(meta["arch"], meta["task"], {"seed": int(meta.get("train_seed", 0))})
    return None
