"""What the data allow any predictor: the noise ceiling of replicated targets, and the
split-conformal interval of out-of-fold residuals with its coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["noise_ceiling", "conformal_half_width", "interval_coverage"]


def noise_ceiling(outcome: pd.Series, topology: pd.Series) -> dict[str, float] | None:
    """The highest R² any predictor of topology can reach on per-topology mean targets.

    With S replicates per topology, ``var(means) = s2_between + s2_within / S``; the
    ceiling is ``s2_between / var(means)`` (None with a single replicate).
    """
    groups = pd.DataFrame({"y": outcome.to_numpy(), "g": topology.to_numpy()}).groupby("g")["y"]
    sizes = groups.size()
    if sizes.max() < 2:
        return None
    within = float(groups.var(ddof=1).mean())
    means = groups.mean()
    s = float(sizes.mean())
    total = float(means.var(ddof=1))
    between = max(0.0, total - within / s)
    return {"ceiling": between / total if total > 0 else float("nan"), "var_between": between,
            "var_within": within, "replicates": s}


def conformal_half_width(residuals: np.ndarray, level: float = 0.9) -> float:
    """Split-conformal half-width: the ``ceil((n + 1) level) / n`` quantile of ``|residuals|``
    (out-of-fold), so ``prediction ± width`` covers a new topology with probability >=
    ``level`` when topologies are exchangeable."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=float)))
    k = int(np.ceil((len(r) + 1) * level))
    return float(r[min(k, len(r)) - 1])


def interval_coverage(oof: pd.DataFrame, level: float = 0.9) -> float:
    """How often the interval covers held-out topologies: for every K-fold fold, the width
    from the other folds' out-of-fold residuals (same repeat), applied to this fold."""
    kfold = oof[oof["scheme"] == "kfold"]
    res = (kfold["measured"] - kfold["predicted"]).abs()
    covered = []
    for _, rep in kfold.groupby("repeat"):
        for fold in rep["fold"].unique():
            inside = rep["fold"] == fold
            width = conformal_half_width(res[rep.index[~inside]], level)
            covered.append(res[rep.index[inside]] <= width)
    return float(pd.concat(covered).mean())
