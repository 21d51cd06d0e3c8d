"""Commands on studies: results, fit, predict, report, run."""

from __future__ import annotations

from pathlib import Path

import click

from topowire._io import check_output
from topowire.cli._app import (
    _TRAIN_FIELDS,
    _arch_options,
    _default,
    _executor,
    _executor_options,
    _given,
    _path,
    _train_options,
    app,
)
from topowire.console import console, print_scores, print_summary, progress
from topowire.errors import ParameterError
from topowire.pipeline import StudyConfig


@app.command()
@click.option("--db", type=_path, required=True, help="Results database.")
@click.option("-o", "--output", type=_path, required=True, help="Table to write (.csv or .parquet).")
@click.option("--run", "run_id", help="Only this run id.")
def results(db, output, run_id) -> None:
    """Export trained models' results as a flat table (one row per model)."""
    check_output(output, db)
    from topowire.store import open_existing

    with open_existing(db) as store:
        console.print(f"wrote {store.export_results(output, run_id)} results to {output}")


@app.command()
@click.option("--db", type=_path, help="Results database of a training run.")
@click.option("--run", "run_id", help="Run id (when the database holds several).")
@click.option("--features", "features_path", type=_path, help="Feature table (default: computed from the topologies).")
@click.option("--table", "table_path", type=_path, help="Fit from any table of features and a target instead.")
@click.option("--target", default="test_acc", show_default=True, help="Column to predict (with --table).")
@click.option("--columns", help="Comma-separated feature columns (with --table), used beside the known features "
              "(topowire features --list) the table has; no other column is ever used.")
@click.option("--group", help="Column for leave-one-group-out CV (default: family, when the table has it).")
@click.option("--size-columns", help="Comma-separated columns of the size baselines (with --table; default: "
              "params, n_nodes, n_edges where present).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and the forest.")
@click.option("--trees", type=click.IntRange(1), default=300, show_default=True, help="Trees in the forest.")
@click.option("--dynamics", is_flag=True, help="With --db: add the dynamics features at init (max Lyapunov "
              "exponent, spectral radius and norm of W_hh) and report the R² they add over graph features.")
@click.option("-o", "--output", type=_path, required=True, help="Predictor file (.skops; metadata in .skops.json).")
def fit(db, run_id, features_path, table_path, target, columns, group, size_columns, seed, trees, dynamics,
        output) -> None:
    """Fit a random-forest predictor of trained performance, cross-validated beside baselines."""
    for written in (output, f"{output}.json"):
        check_output(written, db, features_path, table_path)
    from topowire._io import read_table
    from topowire.pipeline import fit_study, fit_table, load_study
    from topowire.predict import save_predictor

    if dynamics and db is None:
        raise ParameterError("--dynamics needs --db (the run's arch and task rebuild the networks)")
    if (db is None) == (table_path is None):
        raise ParameterError("give either --db (a training run) or --table (any feature table), not both or neither")
    gains = {}
    if db is not None:
        cv, predictor, gains = fit_study(load_study(db, run_id, features_path), seed=seed, n_estimators=trees,
                                         dynamics=dynamics)
    else:
        def split(text):
            return [c.strip() for c in text.split(",") if c.strip()] if text else None

        cv, predictor, ignored = fit_table(read_table(table_path), target, split(columns), group=group,
                                           size=split(size_columns), seed=seed, n_estimators=trees)
        console.print(f"features used ({len(cv.features)}): {', '.join(cv.features)}", highlight=False)
        if ignored:
            console.print(f"columns ignored ({len(ignored)}; not known features -- name them with --columns): "
                          f"{', '.join(map(str, ignored))}", highlight=False)
    save_predictor(predictor, output)
    print_scores(cv)
    for scheme, gain in gains.items():
        console.print(f"dynamics features add {gain:+.3f} R² over graph features alone ({scheme})")
    console.print(f"wrote {output} (+ {output}.json)")


@app.command()
@click.argument("predictor_path", type=_path)
@click.argument("source", type=_path)
@click.option("-o", "--output", type=_path, required=True, help="Predictions table (.csv or .parquet).")
def predict(predictor_path, source, output) -> None:
    """Predict trained performance of a population (JSONL) or a feature table, without training."""
    check_output(output, predictor_path, source)
    from topowire._io import write_table
    from topowire.pipeline import predict_population
    from topowire.predict import held_out_scores, load_predictor

    predictor = load_predictor(predictor_path)
    values = predict_population(predictor, source)
    write_table(values, output, index=values.index.name is not None)
    console.print(f"wrote {len(values)} predictions (with 90% intervals) to {output}")
    scores = held_out_scores(values, predictor.target)
    if scores is not None:
        console.print(f"against the table's {predictor.target}: R² {scores['r2']:.3f}, Spearman "
                      f"{scores['spearman']:.3f}, MAE {scores['mae']:.3g}" +
                      (f", interval coverage {scores['coverage']:.0%}" if "coverage" in scores else ""))


@app.command()
@click.option("--db", type=_path, required=True, help="Results database of a training run.")
@click.option("--run", "run_id", help="Run id (when the database holds several).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and the forest.")
@click.option("--trees", type=click.IntRange(1), default=300, show_default=True, help="Trees in the forest.")
@click.option("-o", "--output", type=_path, required=True, help="Report folder (index.html + figures).")
def report(db, run_id, seed, trees, output) -> None:
    """Write the HTML report of a training run."""
    check_output(output, db, replaced_folder=True)
    from topowire.pipeline import load_study, report_study

    console.print(f"wrote {report_study(load_study(db, run_id), output, seed=seed, n_estimators=trees)}")


@app.command()
@click.argument("recipe", type=_path, required=False)
@_arch_options(StudyConfig().arch)
@_train_options(StudyConfig().train)
@click.option("--replicates", **_default("replicates", "Initialisation seeds per topology.", StudyConfig().train,
                                         type=int))
@click.option("--trees", type=click.IntRange(1), default=300, show_default=True, help="Trees in the forest.")
@_executor_options
@click.option("-o", "--output", type=_path, default=Path("topowire-study"), show_default=True, help="Study folder.")
def run(recipe, task, n_train, n_test, trees, output, **o) -> None:
    """The main job: sample, featurise, train, fit, predict, report and export, into one folder.

    RECIPE defaults to the embedded quick study (graphs/quick.toml). Running again resumes.
    """
    check_output(output, recipe)
    check_output(Path(output) / "report", recipe, replaced_folder=True)
    executor = _executor(o, o.get("device"))
    from topowire.pipeline import default_recipe, run_study
    from topowire.topology import load_recipe

    base = StudyConfig()
    train = {k: v for k, v in o.items() if k in _TRAIN_FIELDS and v is not None}
    arch = _given(type(base.arch), o, kind=o["kind"] or base.arch.kind)  # the kind's natural wiring
    config = StudyConfig(task=task, arch=arch, seed=train.get("seed", base.seed), n_train=n_train,
                         n_test=n_test, n_estimators=trees, train=base.train.replace(**train))
    rec = load_recipe(recipe) if recipe is not None else default_recipe()
    with progress() as update:
        summary = run_study(rec, output, config, log=console.print, progress=update, executor=executor)
    print_summary(summary, f"topowire run: {rec.name}")
