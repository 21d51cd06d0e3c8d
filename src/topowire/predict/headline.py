"""The headline of a cross-validation: what a study can say about wiring, in words.

Every R² is the pooled out-of-fold R² (mean over repeats) and its ``±`` the spread over
folds, said once in the last line; an R² whose spread over folds exceeds 1 is called unstable, not printed as a number;
a share of a noise ceiling below 0.05 is not printed. A design that cannot detect a wiring
effect (:func:`~topowire.predict.beyond.detectable`) says so first, and its scores are not
given as findings.
"""

from __future__ import annotations

import numpy as np

from topowire.predict.beyond import SIZE_TOLERANCE, detectable

__all__ = ["headline"]

#: A spread of R² over folds above this makes the R² no number to report.
UNSTABLE_SD = 1.0
#: Below this noise ceiling no share of it is printed.
SHARE_FLOOR = 0.05


def _importance_note(cv) -> str:
    """Why the forest's top importance may not be the best single feature, when they differ."""
    imps = getattr(cv, "importances", None)
    if imps is None or imps.empty or imps["feature"].iloc[0] == cv.most_chosen:
        return ""
    return (f"; the forest's importances (top features) rank {imps['feature'].iloc[0]} first, since a forest's "
            "importance spreads over correlated features while the single best feature is chosen by its rank "
            f"correlation with {cv.outcome}")


def _power_line(p: dict, cannot: bool) -> str:
    """The design's power in words: the smallest planted effect detected (beside CANNOT DETECT,
    what that means for these topologies), or that none was."""
    if p["detected"] is None:
        return (f"no planted effect up to {p['tried'][-1]['multiple']:g} x the seed sd ({p['seed_sd']:.3g}) along "
                f"{p['along']} is detected by this design")
    found = next(x for x in p["tried"] if x["multiple"] == p["detected"])
    effect = (f"an effect of {p['detected']:g} x the seed sd ({p['seed_sd']:.3g}) along {p['along']}, planted on "
              "this study's own seed noise")
    if cannot:
        return (f"this design would detect {effect} (R² {found['r2']:.2f} recovered); the topologies here differ by "
                "less than that")
    return f"{effect}, is detected (R² {found['r2']:.2f} recovered); smaller ones are not"


def headline(cv) -> dict[str, str]:
    """What the study can say, in words, best first (a warning or a "cannot detect" line,
    when there is one, on top): the noise ceiling, size (held fixed, or size alone), the
    predictor, the graph features beyond size, the quadratic in C and L, the best single
    feature, the design's power and the interval."""
    t = cv.table()
    t = t[t["scheme"] == "kfold"].set_index("model")

    def sd(model: str) -> float:
        return float(t.loc[model].get("r2_fold_sd", float("nan")))

    def score(model: str) -> str:
        r2, spread = float(t.loc[model, "r2"]), sd(model)
        if np.isfinite(spread) and spread > UNSTABLE_SD:
            return f"R² unstable (its sd over folds, {spread:.1f}, exceeds {UNSTABLE_SD:g}: no number to report)"
        return f"R² {r2:.2f}" + (f" ± {spread:.2f}" if np.isfinite(spread) else "")

    lines: dict[str, str] = {}
    if cv.ceiling:
        c = cv.ceiling
        lines["noise ceiling"] = (f"{c['ceiling']:.2f} of the variance of mean {cv.outcome} lies between "
                                  f"topologies ({c['replicates']:.0f} replicates each); no predictor can do better")
    else:
        lines["noise ceiling"] = ("unknown (one replicate per topology): seed noise and wiring cannot be told "
                                  "apart; train with --replicates 3")
    design = cv.size or {}
    size = [m for m in ("linear-size", "forest-size") if m in t.index]
    best_size = max(size, key=lambda m: t.loc[m, "r2"]) if size else None
    cannot = detectable(cv.ceiling)
    if design.get("matched"):
        lines["size"] = (f"held fixed by design: {', '.join(design['columns'])} vary by {design['spread']:.1%} "
                         f"(within the ±{SIZE_TOLERANCE:.0%} matching tolerance), so no size baseline is fitted and "
                         "edge count and density count as wiring")
    elif best_size and not cannot:
        lines["size alone"] = f"{score(best_size)} ({best_size} on {', '.join(design.get('columns', []))})"
    name = cv.model  # the predictor: the forest, or hgb
    forest = t.loc[name]
    if cannot:
        shown = [m for m in (name, best_size, "beyond-size", "quadratic-cl", "best-feature") if m in t.index]
        lines["scores"] = (f"not findings ({', '.join(shown)} are in the full table): on this noise no predictor "
                           "of the wiring has anything to find")
    else:
        share = (f", {forest['r2'] / cv.ceiling['ceiling']:.0%} of the ceiling"
                 if cv.ceiling and cv.ceiling["ceiling"] >= SHARE_FLOOR and sd(name) <= UNSTABLE_SD else "")
        lines[name] = f"{score(name)}{share}; Spearman {forest['spearman']:.2f} (5-fold CV, all features)"
        if cv.model != "forest" and "forest" in t.index:
            lines["forest"] = f"{score('forest')}; Spearman {t.loc['forest', 'spearman']:.2f} (5-fold CV, all features)"
        if "beyond-size" in t.index:
            what = ("of the variance, from the graph features (size held fixed)" if design.get("matched") else
                    "of what size leaves, from the graph features (the size model fitted inside each fold)")
            lines["beyond size"] = f"{score('beyond-size')} {what}"
        if "quadratic-cl" in t.index:
            lines["quadratic (C, L)"] = f"{score('quadratic-cl')} (graph2nn's baseline: clustering and path length)"
        if "best-feature" in t.index:
            close = abs(forest["r2"] - t.loc["best-feature", "r2"]) <= max(sd(name), sd("best-feature"))
            lines["best single feature"] = (f"{score('best-feature')} (chosen inside each training fold; most often "
                                            f"{cv.most_chosen})" + ("; indistinguishable from the "
                                                                    f"{name} within the spread over folds"
                                                                    if close else ""))
    if cv.power:
        lines["power"] = _power_line(cv.power, bool(cannot))
    iv = cv.interval()
    lines["90% interval"] = (f"prediction ± {iv['half_width']:.3g} (split-conformal); it covered "
                             f"{iv['coverage']:.0%} of held-out topologies in CV")
    lines["R² ± sd"] = ("every R² above is pooled out-of-fold (5-fold CV, the mean of its repeats) and its ± the sd "
                        "of R² over the folds")
    if cannot:
        return {"CANNOT DETECT": f"this design cannot detect a wiring effect: {cannot}", **lines}
    warning = _warning(cv, t, best_size, design)
    return lines if warning is None else {"WARNING": warning, **lines}


def _warning(cv, t, best_size: str | None, design: dict) -> str | None:
    """The headline's warning when the predictor does not beat a baseline (the first that
    applies: the mean, size alone, nothing beyond size, the best single feature), else None."""
    name = cv.model
    forest = t.loc[name]
    mean_r2 = t.loc["mean", "r2"] if "mean" in t.index else 0.0
    beaten = [m for m in (best_size, "best-feature") if m in t.index and forest["r2"] <= t.loc[m, "r2"]]
    if forest["r2"] <= max(0.0, mean_r2):
        than = "the mean" if forest["r2"] <= mean_r2 else "zero"
        return (f"the {name} does not beat the mean (its R² {forest['r2']:.2f} is not above {than}): the "
                f"features do not predict {cv.outcome} here")
    if best_size in beaten:
        return (f"the {name} does not beat size alone ({best_size}): nothing here shows an effect of wiring "
                "beyond the size of the network")
    if "beyond-size" in t.index and t.loc["beyond-size", "r2"] <= 0 and not design.get("matched"):
        return ("the graph features explain none of what size leaves (beyond-size R² not above 0): nothing "
                "here shows an effect of wiring beyond the size of the network")
    if beaten:
        return (f"the {name} does not beat the best single feature (most often {cv.most_chosen}): one "
                f"statistic of the wiring carries all that the {name} finds") + _importance_note(cv)
    return None
