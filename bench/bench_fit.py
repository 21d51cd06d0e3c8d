"""What the default study's analysis costs: the fit stage (cross-validation of the forest
and its baselines, held-out permutation importances, the design's power, the final
forest) on a finished study, under three settings side by side, interleaved:

- ``sklearn-importances``: permutation importances by sklearn's ``permutation_importance``
  (one ``predict`` per column and shuffle -- what topowire did before);
- ``stacked-importances``: topowire's (every shuffled copy predicted in one call), 300 trees;
- ``100-trees``: the same with 100 trees, to see what fewer trees lose.

For each it prints the seconds (best of ``--rounds``) and the headline figures, so that a
speed-up is read beside what, if anything, it changes.

    topowire run -o study/ && python bench/bench_fit.py --study study/
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

import topowire.predict.cv as cv_module
from topowire.study import fit_study, load_study


def _sklearn_importance(estimator, x, y, *, n_repeats=3, seed=0):
    from sklearn.inspection import permutation_importance

    return permutation_importance(estimator, x, y, n_repeats=n_repeats, random_state=seed % 2**32,
                                  scoring="r2").importances_mean


SETTINGS = {"sklearn-importances": (_sklearn_importance, 300), "stacked-importances": (None, 300),
            "100-trees": (None, 100)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", type=Path, required=True, help="a folder `topowire run` wrote")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    study = load_study(args.study / "runs.db", features=args.study / "features.csv")
    ours = cv_module.permutation_importance
    seconds = {name: [] for name in SETTINGS}
    figures = {}
    for _ in range(args.rounds):
        for name, (importance, trees) in SETTINGS.items():
            cv_module.permutation_importance = importance or ours
            t0 = time.perf_counter()
            cv, _ = fit_study(study, seed=0, n_estimators=trees)
            seconds[name].append(time.perf_counter() - t0)
            t = cv.table().set_index(["scheme", "model"]).loc["kfold"]
            figures[name] = (f"forest R² {t.loc['forest', 'r2']:.3f} ± {t.loc['forest', 'r2_fold_sd']:.3f}, "
                             f"beyond-size {t.loc['beyond-size', 'r2']:.3f}, best feature {t.loc['best-feature', 'r2']:.3f}"
                             f", power {cv.power['detected'] if cv.power else None} x sd, top features "
                             + ", ".join(cv.importances["feature"].head(3)))
    cv_module.permutation_importance = ours
    print(f"{platform.processor() or platform.machine()}, {len(study.results)} models; best of {args.rounds}")
    print("| setting | fit seconds | vs sklearn-importances | headline |\n|---|---|---|---|")
    base = min(seconds["sklearn-importances"])
    for name in SETTINGS:
        best = float(np.min(seconds[name]))
        print(f"| {name} | {best:.1f} | {base / best:.2f}x | {figures[name]} |")


if __name__ == "__main__":
    main()
