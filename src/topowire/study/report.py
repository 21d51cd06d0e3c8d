"""The report stage: a study's HTML report."""

from __future__ import annotations

from pathlib import Path

from topowire.data.tasks import TASKS
from topowire.study.config import Progress, describe_run, stage_progress
from topowire.study.load import Study


def report_study(study: Study, out: str | Path, *, seed: int = 0, n_estimators: int = 300, cv=None,
                 title: str | None = None, summary: dict[str, str] | None = None,
                 progress: Progress | None = None) -> Path:
    """Write the HTML report of a study into the folder ``out``; returns its index.html.

    Parameters
    ----------
    study : Study
        A trained run and its topologies' features (:func:`load_study`).
    out : str or Path
        The report folder (replaced as a whole).
    seed : int
        Seed of the folds and the forest.
    n_estimators : int
        Trees in the forest.
    cv : CVResult, optional
        Scores already computed (unset: the study is cross-validated here).
    title : str, optional
        The page's title.
    summary : dict, optional
        Lines shown above the scores.
    progress : callable, optional
        ``progress("fit", done, total)`` while the study is cross-validated here.
    """
    from topowire.predict import cross_validate
    from topowire.report import write_report

    if cv is None:  # fit's guards: an outcome at chance or constant is refused, not reported
        names = [c for c in study.features.columns if c != "params"] + ["params"]
        cv = cross_validate(study.table, "test_acc", names, seed=seed, n_estimators=n_estimators,
                            chance=TASKS[study.task].chance, progress=stage_progress(progress, "fit"))
    summary = summary or {"run id": study.run_id, "models": str(len(study.results))}
    return write_report(out, study.results, study.features, cv, topologies=study.topologies,
                        title=title or f"topowire study: run {study.run_id}",
                        summary={"run": describe_run(study.spec), **summary})
