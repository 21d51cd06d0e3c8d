"""The ``topowire`` command line: parse, call the library, print. No logic of its own.

Every error caused by input (bad parameters, files, options) is printed as one line
``error: ...`` on stderr with exit status 2, and no output file is left half written.
Most options are parameters of the library function or config dataclass they feed, and
take their name, type, default and help from its signature and numpydoc ``Parameters``
(:func:`_fields`); choices come from the library's registries. The CLI restates none.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

import click

from topowire import __version__, checks, pipeline, topology
from topowire._io import check_output, check_output_folder, check_table_path, read_table, write_table
from topowire.compiler.arch import Arch
from topowire.compiler.export import export_onnx, export_torchscript, load, save_models
from topowire.console import console, print_frame, print_scores, print_summary, progress
from topowire.data.tasks import make_task
from topowire.dynamics.prune import prune_model
from topowire.errors import ParameterError, TopowireError
from topowire.features import feature_table, list_features
from topowire.predict import load_predictor, prediction_notes, save_predictor
from topowire.report import draw_topology
from topowire.store import open_existing
from topowire.train import results_line, train_population
from topowire.train.config import TrainConfig, check_device
from topowire.train.executors import connect_executor

Checked = checks.click_type
_path = click.Path(path_type=Path)
_FLAGS = {"kind": "--arch", "r": "--radius", "n_estimators": "--trees", "topology_out": "--topology",
          "size": "--size-columns", "id_": "--id", "directed": "--directed/--undirected", "output": ("-o", "--output")}


def _param_help(source) -> dict[str, str]:
    """Each parameter's description in the numpydoc ``Parameters`` of ``source``, as plain text."""
    section = inspect.cleandoc(source.__doc__).partition("Parameters\n----------\n")[2].partition("\n\n")[0]
    helps = {}
    for entry in re.split(r"\n(?=\S)", section):
        head, _, body = entry.partition("\n")
        text = re.sub(r":\w+:`~?([\w.]+\.)?([^`]+)`|``([^`]+)``", lambda m: m[2] or m[3], " ".join(body.split()))
        helps.update(dict.fromkeys(re.findall(r"\w+", head.partition(" : ")[0]), re.sub(r" \(see [^)]*\)", "", text)))
    return helps


def _fields(source, *names: str):
    """Options for the parameters ``names`` of ``source``: a library function or class, or a
    config dataclass instance (its values are the defaults). Type, default and help come
    from its signature and numpydoc; a parameter whose default is None stays unset unless
    given, so the library decides it."""
    fn = source if callable(source) else type(source)
    params, helps = inspect.signature(fn).parameters, _param_help(fn)

    def decorate(command):
        for name in reversed(names):
            p = params[name]
            default = None if p.default in (None, p.empty) else getattr(source, name, p.default)
            annotation = str(p.annotation)
            kw = {"help": helps[name], "default": default, "required": p.default is p.empty}
            if annotation.startswith("bool"):
                kw["is_flag"] = True
            else:
                kw["show_default"] = default is not None
                kw["type"] = Checked(name)
            flags = _FLAGS.get(name, "--" + name.replace("_", "-"))
            command = click.option(*(flags if isinstance(flags, tuple) else (flags,)), name, **kw)(command)
        return command
    return decorate


def _given(cls, options: dict, make=None):
    """``cls`` (a config dataclass, or ``make``) from the options that name its fields and were given."""
    return (make or cls)(**{f.name: options[f.name] for f in dataclasses.fields(cls)
                            if options.get(f.name) is not None})


_STUDY, _TRAIN, _ARCH = pipeline.StudyConfig(), TrainConfig(), Arch()
_WIRING, _EXECUTOR = ("orientation", "inputs", "outputs"), ("executor", "address", "workers", "threads")
_RUN = click.option("--run", "run_id", type=Checked("run_id"), help="Run id (when the database holds several).")
_DB = click.option("--db", type=_path, required=True, help="Results database of a training run.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="topowire")
def app() -> None:
    """Compile graph topologies into neural networks and predict how they train."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning input errors into one line and exit 2."""
    try:
        app.main(args=argv, prog_name="topowire", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except (TopowireError, click.ClickException, OSError) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        if isinstance(exc, OSError) and not isinstance(exc, TopowireError) and exc.strerror:
            message = exc.strerror + (f": {exc.filename}" if exc.filename else "")
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


@app.command()
@click.argument("recipe", type=_path, required=False)
@click.option("-o", "--output", type=_path, required=True, help="Population JSONL to write.")
@click.option("--seed", type=Checked("seed"), help="Seed (default: the recipe's).")
@click.option("--family", type=Checked("family"), help="One family to draw, instead of a RECIPE file.")
@_fields(topology.family_recipe, "count", "n", "k", "p", "m", "d", "directed", "sizes")
def generate(recipe, output, seed, family, count, **params) -> None:
    """Sample a population of random graphs from a recipe file, or from one --family, into JSONL.

    With --family, the options after it give the family's parameters.
    """
    check_output(output, recipe)
    if (recipe is None) == (family is None):
        raise ParameterError("give either a RECIPE file or --family (with its parameters), not both or neither")
    recipe = topology.load_recipe(recipe) if recipe else topology.family_recipe(family, count, **params)
    pop = topology.sample_population(recipe, seed)
    topology.write_population(pop, output)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    dup = sum(c - 1 for c in pop.duplicates().values())
    console.print(f"wrote {len(pop)} topologies ({dup} duplicate(s)) to {output}")


@app.command()
@click.argument("population", type=_path, required=False)
@click.option("-o", "--output", type=_path, help="Table to write (.csv or .parquet).")
@click.option("--names", type=Checked("names"), help="Comma-separated features or groups (default: all; see --list).")
@click.option("-j", "--jobs", type=Checked("jobs"), help="Worker processes (default: one per core).")
@click.option("--list", "list_", is_flag=True, help="Print the feature registry and exit.")
def features(population, output, names, jobs, list_) -> None:
    """Compute the graph features of every topology into a table."""
    check_output(output, population)
    if list_:
        return print_frame(list_features().set_index("name"), "features")
    if population is None or output is None:
        raise ParameterError("features needs a POPULATION file and -o OUTPUT (or --list)")
    check_table_path(output)
    pop = topology.read_population(population)
    with progress() as update:
        df = feature_table(pop, names, n_jobs=jobs or -1, progress=lambda d, t: update("features", d, t))
    write_table(df, output)
    repeated = f" ({len(pop) - len(df)} repeated topologies counted once)" if len(pop) > len(df) else ""
    console.print(f"wrote {df.shape[1]} features of {df.shape[0]} topologies to {output}{repeated}")


@app.command()
@click.argument("population", type=_path)
@click.option("--id", "id_", type=Checked("id_"), help="Show one topology.")
@click.option("--png", type=_path, help="Draw the topology (the first, or --id) to a PNG.")
def show(population, id_, png) -> None:
    """Summarise a population; optionally draw one of its graphs."""
    check_output(png, population)
    pop = topology.read_population(population)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    topo = pop.by_id(id_) if id_ is not None else pop[0]
    if id_ is not None:
        console.print(f"{topo!r}  params={dict(topo.params)}  seed={topo.seed}  density={topo.density:.4g}")
    if png is not None:
        draw_topology(topo, png)
        console.print(f"drew {topo.id} to {png}")


@app.command()
@click.argument("inputs", type=_path, nargs=-1, required=True)
@_fields(topology.convert_graphs, "output", "id_", "directed")
def convert(inputs, output, id_, directed) -> None:
    """Convert graph files into a population, or one topology of a population into a graph file."""
    check_output(output, *inputs)
    console.print(f"wrote {topology.convert_graphs(inputs, output, id_=id_, directed=directed)} to {output}")


@app.command("compile")
@click.argument("population", type=_path)
@_fields(_ARCH, "kind", *_WIRING, "d_in", "d_out", "activation", "iterations")
@click.option("--seed", type=Checked("seed"), default=0, show_default=True, help="Initialisation seed of every model.")
@click.option("-o", "--output", type=_path, required=True, help="New directory for the models and index.csv.")
def compile_(population, seed, output, **o):
    """Compile every topology of a population into a saved model (safetensors + spec)."""
    check_output(output, population)
    count = save_models(topology.read_population(population), _given(Arch, o), output, seed=seed)
    console.print(f"compiled {count} {o['kind']} models to {output}/ (index.csv lists them)")


@app.command("export")
@click.argument("model", type=_path)
@click.option("--format", "fmt", type=Checked("fmt"), required=True, help="Program format.")
@click.option("-o", "--output", type=_path, required=True, help="File to write.")
@_fields(export_torchscript, "seq_len", "batch")
def export_(model, fmt, output, seq_len, batch):
    """Export a saved model to ONNX or TorchScript; a recurrent one reads (x, lengths)."""
    check_output(output, model)
    (export_onnx if fmt == "onnx" else export_torchscript)(load(model), output, batch=batch, seq_len=seq_len)
    console.print(f"exported {model} to {output} ({fmt})")


@app.command()
@click.argument("population", type=_path)
@_fields(_ARCH, "kind", *_WIRING)
@_fields(_STUDY, "task", "n_train", "n_test")
@_fields(_TRAIN, "epochs", "batch_size", "lr", "seed", "optimizer", "clip", "replicates", "device", "bf16", "fused",
         "memory_mb", "chunk_size", "stability")
@_fields(_ARCH, "residual", "r", "phi", "gamma")
@click.option("--db", type=_path, required=True, help="SQLite results database (created or resumed).")
@_fields(make_task, "data_dir", "thesis_csv")
@_fields(connect_executor, *_EXECUTOR)
def train(population, task, n_train, n_test, db, data_dir, thesis_csv, **o) -> None:
    """Train every topology of a population (packed), storing results in a resumable database."""
    check_output(db, population, data_dir, thesis_csv)
    arch, config = _given(Arch, o), _given(TrainConfig, o)
    executor = connect_executor(**{k: o.pop(k) for k in _EXECUTOR}, device=check_device(config.device))
    pop = list(topology.read_population(population))
    data = make_task(task, seed=config.seed, n_train=n_train, n_test=n_test, data_dir=data_dir, thesis_csv=thesis_csv)
    with progress() as update:
        frame = train_population(pop, arch, data, config, store=db, executor=executor,
                                 progress=lambda d, t: update("training", d, t))
    console.print(f"{results_line(frame)}; results in {db}")


@app.command()
@click.argument("model", type=_path)
@_fields(prune_model, "rate", "on", "scope", "retrain")
@_fields(_STUDY, "task", "n_train", "n_test")
@_fields(_TRAIN, "batch_size", "lr", "seed")
@_fields(prune_model, "topology_out")
@click.option("-o", "--output", type=_path, required=True, help="Pruned model (.safetensors).")
def prune(model, output, rate, on, scope, retrain, **o):
    """Magnitude-prune a trained model (biases and readout kept), optionally retrain with the masks fixed."""
    check_output(output, model, o["topology_out"])
    check_output(o["topology_out"], model, output)
    report = prune_model(model, output, rate=rate, on=on, scope=scope, retrain=retrain, **o)
    console.print(f"pruned {model} at rate {rate:g} on {on} ({scope}): {report}; wrote {output}")


@app.command()
@_DB
@click.option("-o", "--output", type=_path, required=True, help="Table to write (.csv or .parquet).")
@_RUN
def results(db, output, run_id) -> None:
    """Export trained models' results as a flat table (one row per model)."""
    check_output(output, db)
    with open_existing(db) as store:
        console.print(f"wrote {store.export_results(output, run_id)} results to {output}")


@app.command()
@click.option("--db", type=_path, help="Results database of a training run.")
@_RUN
@click.option("--features", "features_path", type=_path, help="Feature table (default: computed from the topologies).")
@click.option("--table", "table_path", type=_path, help="Fit from any table of features and a target instead.")
@_fields(pipeline.fit_table, "target", "columns", "group", "size")
@_fields(pipeline.fit_study, "seed", "n_estimators", "dynamics")
@click.option("-o", "--output", type=_path, required=True, help="Predictor file (.skops; metadata in .skops.json).")
def fit(db, run_id, features_path, table_path, target, columns, group, size, seed, n_estimators, dynamics, output):
    """Fit a random-forest predictor of trained performance, cross-validated beside baselines, from a training
    run (--db), or from any table of features and a target (--table, --target, --columns, --group, --size-columns)."""
    for written in (output, f"{output}.json"):
        check_output(written, db, features_path, table_path)
    if dynamics and db is None:
        raise ParameterError("--dynamics needs --db (the run's arch and task rebuild the networks)")
    if (db is None) == (table_path is None):
        raise ParameterError("give either --db (a training run) or --table (any feature table), not both or neither")
    if db is not None and (columns is not None or target != "test_acc"):
        raise ParameterError("--columns and --target go with --table; a run's predictor uses its features for test_acc")
    if db is not None:
        cv, predictor = pipeline.fit_study(pipeline.load_study(db, run_id, features_path), seed=seed,
                                           n_estimators=n_estimators, dynamics=dynamics, group=group, size=size)
    else:
        cv, predictor = pipeline.fit_table(read_table(table_path), target, columns, group=group, size=size, seed=seed,
                                           n_estimators=n_estimators)
    save_predictor(predictor, output)
    print_scores(cv)
    console.print(f"wrote {output} (+ {output}.json)")


@app.command()
@click.argument("predictor_path", type=_path)
@click.argument("source", type=_path)
@click.option("-o", "--output", type=_path, required=True, help="Predictions table (.csv or .parquet).")
def predict(predictor_path, source, output) -> None:
    """Predict trained performance of a population (JSONL) or a feature table, without training."""
    check_output(output, predictor_path, source)
    predictor = load_predictor(predictor_path)
    values = pipeline.predict_population(predictor, source)
    write_table(values, output, index=values.index.name is not None)
    console.print(f"wrote {len(values)} predictions (with 90% intervals) to {output}")
    for note in prediction_notes(values, predictor.target):
        console.print(note, style="bold red" if note.startswith("WARNING") else None, highlight=False)


@app.command()
@_DB
@_RUN
@_fields(pipeline.report_study, "seed", "n_estimators")
@click.option("-o", "--output", type=_path, required=True, help="Report folder (index.html + figures).")
def report(db, run_id, seed, n_estimators, output) -> None:
    """Write the HTML report of a training run."""
    check_output_folder(output, db, kind="report")
    study = pipeline.load_study(db, run_id)
    console.print(f"wrote {pipeline.report_study(study, output, seed=seed, n_estimators=n_estimators)}")


@app.command()
@click.argument("recipe", type=_path, required=False)
@_fields(_STUDY.arch, "kind", *_WIRING)
@_fields(_STUDY, "task", "n_train", "n_test")
@_fields(_STUDY.train, "epochs", "batch_size", "lr", "replicates")
@click.option("--seed", type=Checked("seed"), help="Seed of the study: its population, folds and forest (unset: "
                                                      "the recipe's) and its training (unset: 0).")
@_fields(_STUDY, "n_estimators")
@_fields(connect_executor, *_EXECUTOR)
@click.option("-o", "--output", type=_path, default=Path("topowire-study"), show_default=True, help="Study folder.")
def run(recipe, output, **o) -> None:
    """The main job: sample, featurise, train, fit, predict, report and export, into one folder.

    RECIPE (default: the quick study, graphs/quick.toml) is drawn as `generate` draws it; running again resumes.
    """
    check_output_folder(output, recipe, kind="study")
    executor = connect_executor(**{k: o.pop(k) for k in _EXECUTOR})
    arch, train = _given(Arch, o), _given(TrainConfig, o, make=_STUDY.train.replace)
    config = _given(type(_STUDY), o, make=lambda **kw: dataclasses.replace(_STUDY, **kw, arch=arch, train=train))
    rec = topology.load_recipe(recipe) if recipe is not None else pipeline.default_recipe()
    with progress() as update:
        summary = pipeline.run_study(rec, output, config, log=console.print, progress=update, executor=executor)
    print_summary(summary, f"topowire run: {rec.name}")


if __name__ == "__main__":
    sys.exit(main())
