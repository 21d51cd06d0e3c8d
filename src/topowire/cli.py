"""The ``topowire`` command line: parse, call the library, print. No logic of its own.

Every error caused by input (bad parameters, files, options) is printed as one line
``error: ...`` on stderr with exit status 2, and no output file is left half written.
Choices come from the library's registries and defaults from its config dataclasses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from topowire import __version__
from topowire.compiler.arch import RESIDUALS, TARGETS, Arch
from topowire.compiler.functional import ACTIVATIONS
from topowire.compiler.wiring import ORIENTATIONS
from topowire.console import console, print_frame, print_scores, print_summary, progress
from topowire.data.tasks import TASKS
from topowire.dynamics.prune import ON, SCOPES
from topowire.errors import ParameterError, TopowireError
from topowire.topology.generators import FAMILIES
from topowire.train.config import OPTIMIZERS, TrainConfig
from topowire.train.executors import EXECUTORS

_path = click.Path(path_type=Path)
_TRAIN, _ARCH = TrainConfig(), Arch()


def _choice(values, what: str, default=None) -> dict:
    """click kwargs for a choice from a registry, its values listed in the help."""
    shown = {"show_default": str(default)} if default is not None else {}
    return {"type": click.Choice(list(values)), "help": f"{what}: {', '.join(map(str, values))}.", **shown}


def _default(field: str, help_: str, obj=_TRAIN, **kw) -> dict:
    """An option whose default lives in a config dataclass (None here: the dataclass decides)."""
    return {"default": None, "show_default": str(getattr(obj, field)), "help": help_, **kw}


class _Roles(click.ParamType):
    name = "all|sources|sinks|K"

    def convert(self, value, param, ctx):
        return int(value) if str(value).lstrip("-").isdigit() else value


_WIRING = "Default: the target's natural wiring (cells: both/all/all; iterative, layered: dag/sources/sinks)."


def _options(*specs):
    """Decorate a command with ``(declarations, kwargs)`` option specs, in order."""
    def decorate(fn):
        for decl, kw in reversed(specs):
            fn = click.option(*decl, **kw)(fn)
        return fn
    return decorate


_arch_options = _options(
    (("--arch", "kind"), _choice(TARGETS, "Compile target", "gru") | {"default": "gru"}),
    (("--orientation",), {**_choice(ORIENTATIONS, "How edges become connections"), "help":
                          f"How edges become connections: {', '.join(ORIENTATIONS)}. {_WIRING}"}),
    (("--inputs",), {"type": _Roles(), "help": f"Neurons that read the data: all, sources, or K (top-K by "
                                               f"degree). {_WIRING}"}),
    (("--outputs",), {"type": click.Choice(["all", "sinks"]), "help": "Neurons read out: all or sinks."}),
)


def _arch(kind, orientation, inputs, outputs, **fields) -> Arch:
    given = {"orientation": orientation, "inputs": inputs, "outputs": outputs, **fields}
    return Arch(kind, **{k: v for k, v in given.items() if v is not None})


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="topowire")
def app() -> None:
    """Compile graph topologies into neural networks and predict how they train."""


@app.command()
@click.argument("recipe", type=_path, required=False)
@click.option("-o", "--output", type=_path, required=True, help="Population JSONL to write.")
@click.option("--seed", type=int, help="Seed (default: the recipe's).")
@click.option("--family", **_choice(FAMILIES, "One-family shortcut instead of a recipe"))
@click.option("--count", type=int, default=1, show_default=True, help="Graphs to draw (with --family).")
@click.option("--n", "n", type=int, help="Nodes.")
@click.option("--k", "k", type=int, help="WS / ring degree.")
@click.option("--p", "p", type=float, help="ER edge / WS rewiring probability.")
@click.option("--m", "m", type=int, help="BA edges per node / G(n,m) edges.")
@click.option("--d", "d", type=int, help="Degree of a regular graph.")
@click.option("--directed/--undirected", default=None, help="ER / G(n,m) direction.")
@click.option("--sizes", help="MLP layer widths, e.g. 4,8,2.")
def generate(recipe, output, seed, family, count, n, k, p, m, d, directed, sizes) -> None:
    """Sample a population of random graphs from a recipe (or one family) into JSONL."""
    from topowire.topology import family_recipe, load_recipe, sample_population, write_population

    if (recipe is None) == (family is None):
        raise ParameterError("give either a RECIPE file or --family (with its parameters), not both or neither")
    rec = load_recipe(recipe) if recipe is not None else family_recipe(
        family, count, n=n, k=k, p=p, m=m, d=d, directed=directed, sizes=sizes)
    pop = sample_population(rec, seed)
    write_population(pop, output)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    dup = sum(c - 1 for c in pop.duplicates().values())
    console.print(f"wrote {len(pop)} topologies ({dup} duplicate(s)) to {output}")


@app.command()
@click.argument("population", type=_path, required=False)
@click.option("-o", "--output", type=_path, help="Table to write (.csv or .parquet).")
@click.option("--names", help="Comma-separated features or groups (default: all; see --list).")
@click.option("-j", "--jobs", type=int, default=-1, show_default=True, help="Worker processes (-1: every core).")
@click.option("--list", "list_", is_flag=True, help="Print the feature registry and exit.")
def features(population, output, names, jobs, list_) -> None:
    """Compute the graph features of every topology into a table."""
    from topowire._io import check_table_path, write_table
    from topowire.features import feature_table, list_features, resolve_names
    from topowire.topology import read_population

    if list_:
        return print_frame(list_features().set_index("name"), "features")
    if population is None or output is None:
        raise ParameterError("features needs a POPULATION file and -o OUTPUT (or --list)")
    check_table_path(output)
    resolve_names(names)
    with progress() as update:
        df = feature_table(read_population(population), names, n_jobs=jobs,
                           progress=lambda d, t: update("features", d, t))
    write_table(df, output)
    console.print(f"wrote {df.shape[1]} features of {df.shape[0]} topologies to {output}")


@app.command()
@click.argument("population", type=_path)
@click.option("--id", "id_", help="Show one topology.")
@click.option("--png", type=_path, help="Draw the topology (the first, or --id) to a PNG.")
def show(population, id_, png) -> None:
    """Summarise a population; optionally draw one of its graphs."""
    from topowire.topology import read_population

    pop = read_population(population)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    topo = pop.by_id(id_) if id_ is not None else pop[0]
    if id_ is not None:
        console.print(f"{topo!r}  params={dict(topo.params)}  seed={topo.seed}  density={topo.density:.4g}")
    if png is not None:
        from topowire.report import draw_topology

        draw_topology(topo, png)
        console.print(f"drew {topo.id} to {png}")


@app.command()
@click.argument("inputs", type=_path, nargs=-1, required=True)
@click.option("-o", "--output", type=_path, required=True,
              help="A population .jsonl, or a .graphml/.gml/.edgelist/.npy graph file.")
@click.option("--id", "id_", help="With a population input: the topology to write (default: the first).")
@click.option("--directed/--undirected", default=None, help="Direction of header-less edge lists.")
def convert(inputs, output, id_, directed) -> None:
    """Convert graph files into a population, or one topology of a population into a graph file."""
    from topowire.topology import convert_graphs

    console.print(f"wrote {convert_graphs(inputs, output, id_=id_, directed=directed)} to {output}")


@app.command("compile")
@click.argument("population", type=_path)
@_arch_options
@click.option("--d-in", type=int, **_default("d_in", "Data width.", _ARCH))
@click.option("--d-out", type=int, **_default("d_out", "Readout width (classes).", _ARCH))
@click.option("--activation", **_choice(ACTIVATIONS, "Activation of the iterative map", _ARCH.activation))
@click.option("--iterations", type=int, help="K of the iterative map (default: depth + 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation seed of every model.")
@click.option("-o", "--output", type=_path, required=True, help="New directory for the models and index.csv.")
def compile_(population, kind, orientation, inputs, outputs, d_in, d_out, activation, iterations, seed, output):
    """Compile every topology of a population into a saved model (safetensors + spec)."""
    from topowire.compiler.export import save_models
    from topowire.topology import read_population

    arch = _arch(kind, orientation, inputs, outputs, d_in=d_in, d_out=d_out, activation=activation,
                 iterations=iterations)
    count = save_models(read_population(population), arch, output, seed=seed)
    console.print(f"compiled {count} {kind} models to {output}/ (index.csv lists them)")


@app.command("export")
@click.argument("model", type=_path)
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True, help="onnx or torchscript.")
@click.option("-o", "--output", type=_path, required=True, help="File to write.")
@click.option("--seq-len", type=click.IntRange(1), default=20, show_default=True, help="Sequence length (recurrent).")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True, help="Batch size.")
def export_(model, fmt, output, seq_len, batch):
    """Export a saved model to ONNX or TorchScript (fixed input shape)."""
    from topowire.compiler.export import export_onnx, export_torchscript, load

    (export_onnx if fmt == "onnx" else export_torchscript)(load(model), output, batch=batch, seq_len=seq_len)
    console.print(f"exported {model} to {output} ({fmt})")


_train_options = _options(
    (("--task",), _choice(TASKS, "Task", "reber") | {"default": "reber"}),
    (("--epochs",), _default("epochs", "Passes over the training set.", type=int)),
    (("--batch-size",), _default("batch_size", "Shared batch size.", type=int)),
    (("--lr",), _default("lr", "Learning rate.", type=float)),
    (("--seed",), _default("seed", "Root seed: data, order and every model's init.", type=int)),
    (("--n-train",), {"type": int, "help": "Training examples (default: the task's; reber 4000)."}),
    (("--n-test",), {"type": int, "help": "Test examples (default: the task's; reber 400)."}),
)


@app.command()
@click.argument("population", type=_path)
@_arch_options
@_train_options
@click.option("--db", type=_path, required=True, help="SQLite results database (created or resumed).")
@click.option("--optimizer", **_choice(OPTIMIZERS, "Optimizer", _TRAIN.optimizer))
@click.option("--clip", **_default("clip", "Per-model gradient-norm clip (0: off).", type=float))
@click.option("--replicates", **_default("replicates", "Initialisation seeds per topology.", type=int))
@click.option("--device", **_default("device", "cpu or cuda[:i]."))
@click.option("--bf16", is_flag=True, default=None, help="bf16 autocast of the forward pass (CUDA).")
@click.option("--memory-mb", **_default("memory_mb", "Memory budget of one pack (MiB).", type=int))
@click.option("--chunk-size", type=int, help="Models per pack (overrides --memory-mb).")
@click.option("--executor", **_choice(EXECUTORS, "Where packs run", "local"), default="local")
@click.option("--data-dir", type=_path, help="MNIST folder with the IDX files (default: the bundled subset).")
@click.option("--thesis-csv", type=_path, help="Reber data in the thesis's string,label CSV.")
@click.option("--stability", type=float, help="Keep every model's ||W_hh||_2 <= this (Miller & Hardt), in (0, 1].")
@click.option("--residual", **_choice(RESIDUALS, "wcrnn: the residual R", _ARCH.residual))
@click.option("--radius", type=float, **_default("r", "wcrnn: r of R.", _ARCH))
@click.option("--phi", type=float, **_default("phi", "wcrnn: rotation angle of R (radians).", _ARCH))
@click.option("--gamma", type=float, **_default("gamma", "wcrnn: coupling strength.", _ARCH))
def train(population, kind, orientation, inputs, outputs, task, epochs, batch_size, lr, seed, n_train, n_test, db,
          optimizer, clip, replicates, device, bf16, memory_mb, chunk_size, executor, data_dir, thesis_csv,
          stability, residual, radius, phi, gamma) -> None:
    """Train every topology of a population (packed), storing results in a resumable database."""
    from topowire.data import make_task
    from topowire.store import Store
    from topowire.topology import read_population
    from topowire.train import train_population

    arch = _arch(kind, orientation, inputs, outputs, residual=residual, r=radius, phi=phi, gamma=gamma)
    given = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, replicates=replicates, seed=seed,
                 device=device, bf16=bf16, memory_mb=memory_mb, chunk_size=chunk_size, stability=stability)
    config = TrainConfig(**{k: v for k, v in given.items() if v is not None},
                         **({"clip": clip or None} if clip is not None else {}))
    pop = read_population(population)
    data = make_task(task, seed=config.seed, n_train=n_train, n_test=n_test, data_dir=data_dir, thesis_csv=thesis_csv)
    with Store(db) as store, progress() as update:
        frame = train_population(list(pop), arch, data, config, store=store, executor=executor,
                                 progress=lambda d, t: update("training", d, t))
    ok = frame[frame["status"] == "ok"]
    console.print(f"{len(frame)} models in run {frame['run_id'].iloc[0]}: {len(ok)} ok, {len(frame) - len(ok)} "
                  f"diverged; mean test accuracy {ok['test_acc'].mean():.3f}; results in {db}")


@app.command()
@click.argument("model", type=_path)
@click.option("--rate", type=float, required=True, help="Fraction of the selected connections to remove, in [0, 1].")
@click.option("--on", "on", **_choice(ON, "Connections to prune", "both") | {"default": "both"})
@click.option("--scope", **_choice(SCOPES, "Ranking: one global or per tensor", "global") | {"default": "global"})
@click.option("--retrain", type=click.IntRange(0), default=0, show_default=True, help="Retraining epochs, masks fixed.")
@_train_options
@click.option("--topology", "topology_out", type=_path, help="Also write the pruned connectivity as a population.")
@click.option("-o", "--output", type=_path, required=True, help="Pruned model (.safetensors).")
def prune(model, rate, on, scope, retrain, task, epochs, batch_size, lr, seed, n_train, n_test, topology_out, output):
    """Magnitude-prune a trained model (biases and readout kept), optionally retrain with the masks fixed."""
    from topowire.dynamics.prune import prune_model

    report = prune_model(model, output, rate=rate, on=on, scope=scope, retrain=retrain, task=task, lr=lr,
                         batch_size=batch_size, seed=seed, n_train=n_train, n_test=n_test, topology_out=topology_out)
    kept = ", ".join(f"{k} {v}/{report['counts'][k + '_before']}" for k, v in report["counts"].items()
                     if not k.endswith("_before"))
    console.print(f"pruned {model} at rate {rate:g} on {on} ({scope}): connections kept {kept}")
    console.print(f"test accuracy {report['before']:.3f} -> {report['pruned']:.3f} pruned" +
                  (f" -> {report['after']:.3f} after {retrain} retraining epochs" if retrain else "") +
                  f"; wrote {output}")


@app.command()
@click.option("--db", type=_path, required=True, help="Results database.")
@click.option("-o", "--output", type=_path, required=True, help="Table to write (.csv or .parquet).")
@click.option("--run", "run_id", help="Only this run id.")
def results(db, output, run_id) -> None:
    """Export trained models' results as a flat table (one row per model)."""
    from topowire.store import open_existing

    with open_existing(db) as store:
        console.print(f"wrote {store.export_results(output, run_id)} results to {output}")


@app.command()
@click.option("--db", type=_path, help="Results database of a training run.")
@click.option("--run", "run_id", help="Run id (when the database holds several).")
@click.option("--features", "features_path", type=_path, help="Feature table (default: computed from the topologies).")
@click.option("--table", "table_path", type=_path, help="Fit from any table of features and a target instead.")
@click.option("--target", default="test_acc", show_default=True, help="Column to predict (with --table).")
@click.option("--columns", help="Comma-separated feature columns (with --table; default: every numeric column).")
@click.option("--group", default="family", show_default=True, help="Column for leave-one-group-out CV.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and the forest.")
@click.option("--trees", type=click.IntRange(1), default=300, show_default=True, help="Trees in the forest.")
@click.option("--dynamics", is_flag=True, help="With --db: add the dynamics features at init (max Lyapunov "
              "exponent, spectral radius and norm of W_hh) and report the R² they add over graph features.")
@click.option("-o", "--output", type=_path, required=True, help="Predictor file (.skops; metadata in .skops.json).")
def fit(db, run_id, features_path, table_path, target, columns, group, seed, trees, dynamics, output) -> None:
    """Fit a random-forest predictor of trained performance, cross-validated beside baselines."""
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
        names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        cv, predictor = fit_table(read_table(table_path), target, names, group=group, seed=seed, n_estimators=trees)
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
    from topowire._io import write_table
    from topowire.pipeline import predict_population
    from topowire.predict import load_predictor

    values = predict_population(load_predictor(predictor_path), source)
    write_table(values.to_frame(), output)
    console.print(f"wrote {len(values)} predictions to {output}")


@app.command()
@click.option("--db", type=_path, required=True, help="Results database of a training run.")
@click.option("--run", "run_id", help="Run id (when the database holds several).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and the forest.")
@click.option("--trees", type=click.IntRange(1), default=300, show_default=True, help="Trees in the forest.")
@click.option("-o", "--output", type=_path, required=True, help="Report folder (index.html + figures).")
def report(db, run_id, seed, trees, output) -> None:
    """Write the HTML report of a training run."""
    from topowire.pipeline import load_study, report_study

    console.print(f"wrote {report_study(load_study(db, run_id), output, seed=seed, n_estimators=trees)}")


@app.command()
@click.argument("recipe", type=_path, required=False)
@_arch_options
@_train_options
@click.option("--replicates", **_default("replicates", "Initialisation seeds per topology.", type=int))
@click.option("--trees", type=click.IntRange(1), default=300, show_default=True, help="Trees in the forest.")
@click.option("--executor", **_choice(EXECUTORS, "Where packs run", "local"), default="local")
@click.option("-o", "--output", type=_path, default=Path("topowire-study"), show_default=True, help="Study folder.")
def run(recipe, kind, orientation, inputs, outputs, task, epochs, batch_size, lr, seed, n_train, n_test, replicates,
        trees, executor, output) -> None:
    """The main job: sample, featurise, train, fit, predict, report and export, into one folder.

    RECIPE defaults to the embedded quick study (graphs/quick.toml). Running again resumes.
    """
    from topowire.pipeline import StudyConfig, default_recipe, run_study
    from topowire.topology import load_recipe

    base = StudyConfig()
    given = dict(epochs=epochs, batch_size=batch_size, lr=lr, replicates=replicates, seed=seed)
    config = StudyConfig(task=task, arch=_arch(kind, orientation, inputs, outputs), seed=base.seed if seed is None
                         else seed, n_train=n_train, n_test=n_test, n_estimators=trees,
                         train=base.train.replace(**{k: v for k, v in given.items() if v is not None}))
    rec = load_recipe(recipe) if recipe is not None else default_recipe()
    with progress() as update:
        summary = run_study(rec, output, config, log=console.print, progress=update, executor=executor)
    print_summary(summary, f"topowire run: {rec.name}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning input errors into one line and exit 2."""
    try:
        app.main(args=argv, prog_name="topowire", standalone_mode=False)
    except TopowireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
