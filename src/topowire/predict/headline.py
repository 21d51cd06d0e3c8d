"""The headline of a cross-validation: what a study can say about wiring, in words."""

from __future__ import annotations

import numpy as np

__all__ = ["headline"]


def headline(cv) -> dict[str, str]:
    """What the study can say, in words, best first (a warning, when there is one, on
    top): the noise ceiling, the predictor against it, size alone, the best single feature."""
    t = cv.table()
    t = t[t["scheme"] == "kfold"].set_index("model")

    def score(model: str) -> str:
        row = t.loc[model]
        sd = row.get("r2_fold_sd", float("nan"))
        return f"R² {row['r2']:.2f}" + (f" ± {sd:.2f} (sd over folds)" if np.isfinite(sd) else "")

    lines = {}
    if cv.ceiling:
        c = cv.ceiling
        lines["noise ceiling"] = (f"{c['ceiling']:.2f} of the variance of mean {cv.target} lies between "
                                  f"topologies ({c['replicates']:.0f} replicates each); no predictor can do better")
    else:
        lines["noise ceiling"] = ("unknown (one replicate per topology): seed noise and wiring cannot be told "
                                  "apart; train with --replicates 3")
    name = cv.model  # the predictor: the forest, or hgb
    forest = t.loc[name]
    share = (f", {forest['r2'] / cv.ceiling['ceiling']:.0%} of the ceiling"
             if cv.ceiling and cv.ceiling["ceiling"] > 0 else "")
    lines[name] = f"{score(cv.model)}{share}; Spearman {forest['spearman']:.2f} (5-fold CV, all features)"
    if cv.model != "forest" and "forest" in t.index:
        lines["forest"] = f"{score('forest')}; Spearman {t.loc['forest', 'spearman']:.2f} (5-fold CV, all features)"
    size = [m for m in ("linear-size", "forest-size") if m in t.index]
    best_size = max(size, key=lambda m: t.loc[m, "r2"]) if size else None
    if best_size:
        lines["size alone"] = f"{score(best_size)} ({best_size})"
    if "best-feature" in t.index:
        lines["best single feature"] = (f"{score('best-feature')} (chosen inside each training fold; "
                                        f"most often {cv.most_chosen})")
    iv = cv.interval()
    lines["90% interval"] = (f"prediction ± {iv['half_width']:.3g} (split-conformal); it covered "
                             f"{iv['coverage']:.0%} of held-out topologies in CV")
    mean_r2 = t.loc["mean", "r2"] if "mean" in t.index else 0.0
    beaten = [m for m in (best_size, "best-feature") if m in t.index and forest["r2"] <= t.loc[m, "r2"]]
    if forest["r2"] <= max(0.0, mean_r2):
        than = "the mean" if forest["r2"] <= mean_r2 else "zero"
        warning = (f"the {name} does not beat the mean (its R² {forest['r2']:.2f} is not above {than}): the "
                   f"features do not predict {cv.target} here")
    elif best_size in beaten:
        warning = (f"the {name} does not beat size alone ({best_size}): nothing here shows an effect of wiring "
                   "beyond the size of the network")
    elif beaten:
        warning = (f"the {name} does not beat the best single feature (most often {cv.most_chosen}): one "
                   f"statistic of the wiring carries all that the {name} finds")
    else:
        return lines
    return {"WARNING": warning, **lines}
