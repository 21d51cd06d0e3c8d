"""The main job, :func:`run_study`: sample -> features -> pack and train (resumable) ->
cross-validated predictors -> predictions for an unseen population -> report -> the best
model exported, each stage a call of its own module."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from topowire._io import write_table
from topowire.data import Task
from topowire.errors import DataError
from topowire.seeds import derive
from topowire.study.config import STUDY_FILES, Progress, StudyConfig, describe_run, stage_progress, validate
from topowire.study.export import export_best
from topowire.study.fit import fit_study
from topowire.study.load import Study, model_features
from topowire.study.predict import predict_population
from topowire.study.report import report_study
from topowire.study.summary import accuracy_by_family, fingerprint, headline_lines, keep_summary, kept_summary
from topowire.topology import Population, Recipe, sample_population, write_population
from topowire.train import results_line
from topowire.train.spec import RunSpec


def run_study(recipe: Recipe, out: str | Path, config: StudyConfig = StudyConfig(),
              log: Callable[[str], None] = print, progress: Progress | None = None,
              executor="local") -> dict[str, str]:
    """Run a whole study into ``out`` and return its summary.

    Its stages, each taking what the one before made: sample the population, compute its
    features, train every model (resumable, every model's weights kept), fit the predictor
    beside its baselines, predict an unseen population, write the report, export the best
    model (from its trained weights: nothing is trained twice).

    Files: ``population.jsonl``, ``features.csv`` (graph features and ``params``: a valid
    ``predict`` input), ``runs.db``, ``results.csv``, ``scores.csv``, ``importances.csv``,
    ``predictor.skops`` (+ ``.json``), ``unseen_population.jsonl``, ``predictions.csv``,
    ``report/index.html``, ``best_model.safetensors`` (and ``best_model.onnx`` with the onnx extra).
    """
    t_start = time.perf_counter()
    task, spec = validate(recipe, config)
    pop = sample_population(recipe, config.seed)  # the recipe's seed when None; a bad draw makes no folder
    out = _study_folder(out)
    _sample(pop, out, log)
    features = _features(pop, spec, out, log, progress)
    study, trained = _train(pop, features, spec, task, out, log, progress, executor)
    inputs = fingerprint(out, config)
    kept = None if trained else kept_summary(out, inputs)
    if kept is not None:
        log("nothing changed since the last run: its fit, predictions, report and best model are kept "
            "(summary.json)")
        return {**kept, "seconds": f"{time.perf_counter() - t_start:.0f}"}
    summary = {"run": describe_run(spec),
               "models": f"{len(study.results)} ({len(pop)} topologies x {config.train.replicates} replicates)",
               **accuracy_by_family(study.results)}
    try:
        cv, predictor = _fit(study, pop.seed, config, out, progress)
    except DataError as exc:  # a degenerate outcome is reported, never scored
        summary = {"WARNING": f"{exc}; no predictor was fitted", **summary}
        log(f"WARNING: {exc}")
    else:
        summary = {**headline_lines(cv), **summary, **_predict(predictor, recipe, pop.seed, out)}
        title = f"topowire study: {recipe.name}, {recipe.design()}"
        summary["report"] = str(report_study(study, out / "report", cv=cv, title=title, summary=summary,
                                             progress=progress))
    summary.update(export_best(study, out, config, task, log))
    keep_summary(out, inputs, summary)
    return {**summary, "seconds": f"{time.perf_counter() - t_start:.0f}"}

def _study_folder(out: str | Path) -> Path:
    """The study folder, made and marked (none is left behind if even that fails)."""
    from topowire._io import check_output_folder, mark_folder

    out = Path(out)
    check_output_folder(out, kind="study")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        mark_folder(out, "study", STUDY_FILES)
    except OSError:
        if made:  # a full disk leaves no empty study folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return out

def _sample(pop: Population, out: Path, log) -> Population:
    write_population(pop, out / "population.jsonl")
    log(f"sampled {len(pop)} topologies ({', '.join(f'{k}: {v}' for k, v in pop.summary()['graphs'].items())})")
    return pop

def _features(pop: Population, spec: RunSpec, out: Path, log, progress) -> pd.DataFrame:
    features = model_features(list(pop), None, spec.arch, seed=spec.train.seed, progress=progress)
    write_table(features.rename_axis("id"), out / "features.csv")
    log(f"computed {features.shape[1] - 1} graph features and the parameter counts")
    return features

def _train(pop: Population, features: pd.DataFrame, spec: RunSpec, task: Task, out: Path, log, progress,
           executor) -> Study:
    from topowire.store import Store
    from topowire.train import train_population

    rid, total = spec.run_id(task), len({t.id for t in pop}) * spec.train.replicates
    before = 0
    if (out / "runs.db").is_file():
        with Store(out / "runs.db", readonly=True) as store:
            before = len(store.done(rid))
    if before >= total:
        log(f"nothing left to train: all {total} models of run {rid} are in runs.db")
    train_progress = stage_progress(progress, "training") if before < total else None
    results = train_population(list(pop), spec.arch, task, spec.train, store=out / "runs.db", progress=train_progress,
                               executor=executor, keep_weights=True)
    write_table(results.drop(columns=["curves"]), out / "results.csv", index=False)
    log(results_line(results))
    return Study(results, features, {t.id: t for t in pop}, spec, results["run_id"].iloc[0]), before < total

def _fit(study: Study, seed: int, config: StudyConfig, out: Path, progress: Progress | None = None):
    """The study's predictor, its scores and importances, into ``out``. ``seed`` is the
    study's population seed; it also seeds the folds and forest."""
    from topowire.predict import save_predictor

    cv, predictor = fit_study(study, seed=seed, n_estimators=config.n_estimators, progress=progress)
    write_table(cv.table(), out / "scores.csv", index=False)
    write_table(cv.importances, out / "importances.csv", index=False)
    save_predictor(predictor, out / "predictor.skops")
    return cv, predictor

def _predict(predictor, recipe: Recipe, seed: int, out: Path) -> dict[str, str]:
    """Predictions for a new draw of the recipe (the seed's ``unseen`` child), into ``out``."""
    unseen_seed = derive(seed, "unseen")
    unseen = sample_population(recipe, unseen_seed)
    write_population(unseen, out / "unseen_population.jsonl")
    predicted = predict_population(predictor, unseen)
    families = {t.id: t.family for t in unseen}
    write_table(predicted.assign(family=[families[i] for i in predicted.index]).rename_axis("id"),
                out / "predictions.csv")
    outside = int((predicted["outside_training"] != "").sum())
    return {"predictions": f"{len(predicted)} topologies of a new draw (seed {unseen_seed}) in predictions.csv"
                           + (f"; {outside} of them outside the training range (its outside_training column)"
                              if outside else "")}
