"""The table a predictor is fitted on: its checks (columns, an outcome something can be learnt
from) and its rows averaged per topology."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from topowire.errors import DataError
from topowire.predict.ceiling import noise_ceiling

__all__ = ["check_table", "check_finite", "check_outcome", "aggregate"]

def check_table(table: pd.DataFrame, outcome: str, features: Sequence[str]) -> None:
    """Raise DataError unless the table has the outcome and the features, numeric."""
    if outcome not in table.columns:
        raise DataError(f"outcome column {outcome!r} is not in the table (columns: "
                        f"{', '.join(map(str, table.columns))})")
    missing = [f for f in features if f not in table.columns]
    if missing:
        raise DataError(f"feature column(s) {', '.join(missing)} are not in the table")
    check_finite(table, [outcome, *features])
    if table[outcome].isna().any():
        raise DataError(f"outcome {outcome!r} has {int(table[outcome].isna().sum())} missing value(s)")


#: The largest magnitude a feature may have: the forests compute in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(table: pd.DataFrame, columns: Sequence[str]) -> None:
    """DataError unless ``columns`` are numeric and finite where present (a missing value
    is imputed; infinity, or a value beyond float32, is refused naming its column)."""
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise DataError(f"column(s) {', '.join(bad)} are not numeric")
    x = table[list(columns)].to_numpy(dtype=float)
    huge = np.isinf(x) | (np.abs(np.nan_to_num(x)) > FLOAT32_MAX)
    if huge.any():
        row, col = np.argwhere(huge)[0]
        raise DataError(f"column {list(columns)[col]!r} holds {x[row, col]!r}: features must be finite and at most "
                        f"{FLOAT32_MAX:.3g} in magnitude")


#: An outcome within this of the task's chance level everywhere was not learnt.
CHANCE_MARGIN = 0.02


def at_chance(y, chance: float | None) -> bool:
    """Whether every value of ``y`` lies within :data:`CHANCE_MARGIN` of ``chance``."""
    return chance is not None and bool(np.abs(np.asarray(y, dtype=float) - chance).max() <= CHANCE_MARGIN)


def check_outcome(y: np.ndarray, outcome: str, chance: float | None = None) -> None:
    """Refuse an outcome nothing can be learnt from: constant, near-constant, or at chance.

    Raises
    ------
    DataError
        When the outcome (per-topology means) does not vary (spread below 1e-9 of its
        scale, or 90% of the topologies sharing one value), or when every topology is
        within 0.02 of the task's chance level.
    """
    y = np.asarray(y, dtype=float)
    values, counts = np.unique(y, return_counts=True)
    if np.ptp(y) <= 1e-9 * max(1.0, float(np.abs(y).max())):
        raise DataError(f"outcome {outcome!r} is constant ({y[0]:.4g} for all {len(y)} topologies): nothing to predict")
    if counts.max() >= 0.9 * len(y):
        raise DataError(f"outcome {outcome!r} is near-constant ({counts.max()} of {len(y)} topologies share the value "
                        f"{values[counts.argmax()]:.4g}): nothing to predict")
    if at_chance(y, chance):
        raise DataError(f"every topology's {outcome} is within {CHANCE_MARGIN} of chance ({chance:g}): the models did "
                        "not learn, so there is nothing to predict")


def aggregate(table: pd.DataFrame, outcome: str, features: Sequence[str]) -> tuple[pd.DataFrame, dict | None]:
    if "topology_id" not in table.columns or not table["topology_id"].duplicated().any():
        return table.reset_index(drop=True), None
    ceiling = noise_ceiling(table[outcome], table["topology_id"])
    agg = {c: "first" for c in table.columns if c not in (outcome, "topology_id")}
    agg[outcome] = "mean"
    return table.groupby("topology_id", sort=False).agg(agg).reset_index(), ceiling
