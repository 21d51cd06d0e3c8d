"""The fit stage: cross-validated predictors of a study (:func:`fit_study`) or of any
table (:func:`fit_table`), the feature columns a table offers (:func:`select_features`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from topowire.data.tasks import TASKS
from topowire.errors import DataError, ParameterError
from topowire.study.config import Progress, stage_progress
from topowire.study.load import Study, model_features
from topowire.train import results_line


def fit_study(study: Study, *, seed: int = 0, n_estimators: int = 300, dynamics: bool = False,
              group: str | None = None, size: str | Sequence[str] | None = None, model: str = "forest",
              progress: Progress | None = None):
    """Cross-validate and fit the forest of a study; returns ``(cv, predictor)``.

    Parameters
    ----------
    study : Study
        A trained run and its topologies' features (:func:`load_study`).
    seed : int
        Seed of the folds and the forest.
    n_estimators : int
        Trees in the forest.
    dynamics : bool
        Add the dynamics features at initialisation (max Lyapunov exponent, spectral radius
        and norm of W_hh) and score a graph-only forest on the same folds: the R² they add
        in each CV scheme is reported (see ``cv.notes``).
    group, size : optional
        As :func:`fit_table`: the leave-one-group-out column (unset: ``family``) and the
        size baselines' columns, which the study's table must have.
    model : {"forest", "hgb"}
        The predictor: a random forest, or histogram gradient boosting (scored beside the
        forest).
    progress : callable, optional
        ``progress("fit", done, total)`` as the cross-validations finish.
    """
    from topowire.predict import cross_validate, fit_predictor

    table = study.table
    group, size = _check_columns(table, group, size)
    if table.empty:
        raise DataError(f"{results_line(study.results)}: there is nothing to fit")
    names = [c for c in study.features.columns if c != "params"] + ["params"]
    extra, meta = None, {"run_id": study.run_id, "run": study.spec.to_dict()}
    if dynamics:
        from topowire.features import MODEL_REGISTRY

        dyn_names = list(MODEL_REGISTRY["dynamics"].docs)
        if not study.arch.masked_cell:
            raise ParameterError(f"--dynamics needs a masked recurrent run, this one is {study.arch.kind!r}")
        dyn = model_features(list(study.topologies.values()), dyn_names, study.arch, task=study.spec.task.build(),
                             seed=study.train_seed)
        table = table.join(dyn, on="topology_id")
        extra, names = {"forest-graph": names}, names + dyn_names
    cv = cross_validate(table, "test_acc", names, seed=seed, n_estimators=n_estimators, extra_forests=extra,
                        chance=TASKS[study.task].chance, groups=group or "family", size=size, model=model,
                        progress=stage_progress(progress, "fit"))
    predictor = fit_predictor(table, "test_acc", names, seed=seed, n_estimators=n_estimators, model=model,
                              meta={**meta, **_cv_meta(cv)})
    if extra:
        cv.notes.extend(_dynamics_notes(cv.table().set_index(["scheme", "model"])))
    return cv, predictor

def _dynamics_notes(table: pd.DataFrame) -> list[str]:
    """What the dynamics features add over the graph features, per CV scheme -- in words
    where neither forest beats the mean (a difference of two failures is not a gain)."""
    notes = []
    for scheme in table.index.get_level_values(0).unique():
        both, graph = table.loc[(scheme, "forest"), "r2"], table.loc[(scheme, "forest-graph"), "r2"]
        notes.append(f"dynamics features add {both - graph:+.3f} R² over graph features alone ({scheme})"
                     if max(both, graph) > 0 else
                     f"dynamics features: no gain can be measured ({scheme}): neither forest beats the mean "
                     f"(R² {both:.2f} with them, {graph:.2f} without)")
    return notes

def _cv_meta(cv) -> dict[str, Any]:
    return {"scores": cv.table().to_dict(orient="records"), "noise_ceiling": cv.ceiling,
            "importances": cv.importances.to_dict(orient="records"), "interval": cv.interval()}

def select_features(table: pd.DataFrame, outcome: str, columns: Sequence[str] | None = None,
                    exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The feature columns of a foreign table, and the columns left out.

    Used: the known features (graph and model features of the registry, ``params``) that
    the table has, plus every column ``columns`` names. Never used: any other column --
    an outcome such as ``test_loss`` or ``time`` would leak the outcome into the features.

    Raises
    ------
    ParameterError
        A named column is missing or is the outcome, or no feature is left.
    """
    from topowire.features import list_features

    named = list(columns or [])
    missing = [c for c in named if c not in table.columns]
    if missing:
        raise ParameterError(f"--columns names {', '.join(missing)}, not in the table (its columns: "
                             f"{', '.join(map(str, table.columns))})")
    if outcome in named:
        raise ParameterError(f"--columns names the outcome {outcome!r}: a predictor cannot use what it predicts")
    known = set(list_features()["name"])
    used = [c for c in table.columns if (c in known or c in named) and c != outcome and c not in exclude]
    ignored = [c for c in table.columns if c not in used and c != outcome]
    if not used:
        raise ParameterError("no feature in the table: none of its columns is a known feature (topowire features "
                             "--list); name the feature columns with --columns")
    return used, ignored

def _check_columns(table: pd.DataFrame, group: str | None, size: str | Sequence[str] | None):
    """``(group, size)`` with ``size`` as a list, or ParameterError naming a column the table lacks."""
    size = [x.strip() for x in size.split(",") if x.strip()] if isinstance(size, str) else size
    for what, names in (("group", [group] if group is not None else []), ("size", size or [])):
        for name in names:
            if name not in table.columns:
                raise ParameterError(f"{what} column {name!r} is not in the table (its columns: "
                                     f"{', '.join(map(str, table))})")
    return group, size

def fit_table(table: pd.DataFrame, outcome: str = "test_acc", columns: str | Sequence[str] | None = None, *,
              group: str | None = None, size: str | Sequence[str] | None = None, seed: int = 0,
              n_estimators: int = 300, model: str = "forest", progress: Progress | None = None):
    """Cross-validate and fit a forest on any table; returns ``(cv, predictor)``.

    ``cv.notes`` names the features used and the columns left out.

    Parameters
    ----------
    table : DataFrame
        One row per model (or topology): features, the outcome and anything else.
    outcome : str
        The column to predict.
    columns : str or list of str, optional
        Feature columns (a list or a comma-separated string) used beside the known
        features the table has (see :func:`select_features`); no other column is ever used.
    group : str, optional
        The column of the leave-one-group-out scheme. Unset: ``family``, when the table has it.
    size : str or list of str, optional
        The size baselines' columns (a list or comma-separated). Unset: ``params``,
        ``n_nodes``, ``n_edges`` where present.
    seed : int
        Seed of the folds and the forest.
    n_estimators : int
        Trees in the forest.
    model : {"forest", "hgb"}
        The predictor (see :func:`fit_study`).
    """
    from topowire.predict import cross_validate, fit_predictor

    columns = [x.strip() for x in columns.split(",") if x.strip()] if isinstance(columns, str) else columns
    group, size = _check_columns(table, group, size)
    group = group if group is not None else ("family" if "family" in table.columns else None)
    names, ignored = select_features(table, outcome, columns, exclude=[group, "id", "topology_id"])
    cv = cross_validate(table, outcome, names, groups=group, size=size, seed=seed, n_estimators=n_estimators,
                        model=model, progress=stage_progress(progress, "fit"))
    cv.notes.insert(0, f"features used ({len(names)}): {', '.join(map(str, names))}")
    if ignored:
        cv.notes.insert(1, f"columns ignored ({len(ignored)}; not known features -- name them with --columns): "
                           f"{', '.join(map(str, ignored))}")
    return cv, fit_predictor(table, outcome, names, seed=seed, n_estimators=n_estimators, meta=_cv_meta(cv),
                             model=model)
