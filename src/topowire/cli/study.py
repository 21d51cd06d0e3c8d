"""Commands on studies: results, fit, predict, report and run (the main job)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from topowire import study as studies
from topowire._io import check_output, check_output_folder, read_table, write_table
from topowire.cli import app
from topowire.cli.options import DB, EXECUTOR, PATH, RUN, WIRING, Checked, arch_of, fields, given, target_options
from topowire.console import console, print_scores, print_summary, progress
from topowire.errors import ParameterError
from topowire.predict import load_predictor, prediction_notes, save_predictor
from topowire.store import open_existing
from topowire.topology import load_recipe
from topowire.train import TrainConfig
from topowire.train.config import PROTOCOL_DEFAULTS, check_device
from topowire.train.executors import connect_executor

STUDY = studies.StudyConfig()


@app.command()
@DB
@click.option("-o", "--output", type=PATH, required=True, help="Table to write (.csv or .parquet).")
@RUN
def results(db, output, run_id) -> None:
    """Export trained models' results as a flat table (one row per model)."""
    check_output(output, db)
    with open_existing(db) as store:
        console.print(f"wrote {store.export_results(output, run_id)} results to {output}")


@app.command()
@click.option("--db", type=PATH, help="Results database of a training run.")
@RUN
@click.option("--features", "features_path", type=PATH, help="Feature table (default: computed from the topologies).")
@click.option("--table", "table_path", type=PATH, help="Fit from any table of features and an outcome instead.")
@fields(studies.fit_table, "outcome", "columns", "group", "size")
@fields(studies.fit_study, "seed", "n_estimators", "dynamics", "model")
@click.option("-o", "--output", type=PATH, required=True, help="Predictor file (.skops; metadata in .skops.json).")
def fit(db, run_id, features_path, table_path, outcome, columns, group, size, seed, n_estimators, dynamics, model,
        output):
    """Fit a predictor of trained performance, cross-validated beside baselines.

    From a training run (--db), or from any table of features and an outcome (--table, --outcome, --columns,
    --group, --size-columns).
    """
    for written in (output, f"{output}.json"):
        check_output(written, db, features_path, table_path)
    if dynamics and db is None:
        raise ParameterError("--dynamics needs --db (the run's arch and task rebuild the networks)")
    if (db is None) == (table_path is None):
        raise ParameterError("give either --db (a training run) or --table (any feature table), not both or neither")
    if db is not None and (columns is not None or outcome != "test_acc"):
        raise ParameterError("--columns and --outcome go with --table; a run's predictor predicts its test_acc")
    with progress() as update:
        if db is not None:
            cv, predictor = studies.fit_study(studies.load_study(db, run_id, features_path), seed=seed,
                                               n_estimators=n_estimators, dynamics=dynamics, group=group, size=size,
                                               model=model, progress=update)
        else:
            cv, predictor = studies.fit_table(read_table(table_path), outcome, columns, group=group, size=size,
                                               seed=seed, n_estimators=n_estimators, model=model, progress=update)
    save_predictor(predictor, output)
    print_scores(cv)
    console.print(f"wrote {output} (+ {output}.json)")


@app.command()
@click.argument("predictor_path", type=PATH)
@click.argument("source", type=PATH)
@click.option("-o", "--output", type=PATH, required=True, help="Predictions table (.csv or .parquet).")
def predict(predictor_path, source, output) -> None:
    """Predict trained performance of a population (JSONL) or a feature table, without training."""
    check_output(output, predictor_path, source)
    predictor = load_predictor(predictor_path)
    values = studies.predict_population(predictor, source)
    write_table(values, output, index=values.index.name is not None)
    console.print(f"wrote {len(values)} predictions (with 90% intervals) to {output}")
    for note in prediction_notes(values, predictor.outcome):
        console.print(note, style="bold red" if note.startswith("WARNING") else None, highlight=False)


@app.command()
@DB
@RUN
@fields(studies.report_study, "seed", "n_estimators")
@click.option("-o", "--output", type=PATH, required=True, help="Report folder (index.html + figures).")
def report(db, run_id, seed, n_estimators, output) -> None:
    """Write the HTML report of a training run."""
    check_output_folder(output, db, kind="report")
    study = studies.load_study(db, run_id)
    with progress() as update:
        index = studies.report_study(study, output, seed=seed, n_estimators=n_estimators, progress=update)
    console.print(f"wrote {index}")


@app.command()
@click.argument("recipe", type=PATH, required=False)
@click.option("--study", type=Checked("study"), default="quick", show_default=True,
              help="The embedded study: its recipe (unless RECIPE) and config (options given override it).")
@fields(STUDY.arch, "kind", *WIRING, unset="(default: the study's)")
@target_options
@fields(STUDY, "task", "n_train", "n_test", unset="(default: the study's)")
@fields(STUDY.train, "epochs", "batch_size", "lr", "optimizer", "momentum", *PROTOCOL_DEFAULTS, "replicates", "device",
        unset="(default: the study's)")
@click.option("--seed", type=Checked("seed"), help="Seed of the study: its population, folds and forest (unset: "
                                                      "the recipe's) and its training (unset: 0).")
@fields(STUDY, "n_estimators")
@fields(connect_executor, *EXECUTOR)
@click.option("-o", "--output", type=PATH, default=Path("topowire-study"), show_default=True, help="Study folder.")
def run(recipe, output, study, **o) -> None:
    """The main job: sample, featurise, train, fit, predict, report and export, into one folder.

    RECIPE (default: the study's own, e.g. graphs/quick.toml) is drawn as `generate` draws it; running again resumes.
    """
    check_output_folder(output, recipe, kind="study")
    where = {k: o.pop(k) for k in EXECUTOR}
    rec, base = studies.study_preset(study)
    arch, train = arch_of(o, base.arch), given(TrainConfig, o, make=base.train.replace)
    config = given(type(base), o, make=lambda **kw: dataclasses.replace(base, **kw, arch=arch, train=train))
    executor = connect_executor(**where, device=check_device(config.train.device))  # Ray: a GPU per pack on CUDA
    rec = load_recipe(recipe) if recipe is not None else rec
    with progress() as update:
        summary = studies.run_study(rec, output, config, log=console.print, progress=update, executor=executor)
    print_summary(summary, f"topowire run: {rec.name}, {rec.design()}")
