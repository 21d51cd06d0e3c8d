"""The ``topowire`` command line: parse, call the library, print. No logic of its own.

Every error caused by input (bad parameters, files, options) is printed as one line
``error: ...`` on stderr with exit status 2, and no output file is left half written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from topowire import __version__
from topowire.errors import ParameterError, TopowireError

console = Console()
_path = click.Path(path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="topowire")
def app() -> None:
    """Compile graph topologies into neural networks and predict how they train."""


# -- generate -----------------------------------------------------------------------------
@app.command()
@click.argument("recipe", type=_path, required=False)
@click.option("-o", "--output", type=_path, required=True, help="Population JSONL to write.")
@click.option("--seed", type=int, help="Seed (default: the recipe's).")
@click.option("--family", help="One-family shortcut: er, gnm, ws, ba, ring, regular, complete, mlp.")
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
    from topowire.topology import load_recipe, parse_recipe, sample_population, write_population

    if (recipe is None) == (family is None):
        raise ParameterError("give either a RECIPE file or --family (with its parameters), not both or neither")
    if recipe is not None:
        rec = load_recipe(recipe)
    else:
        params = {"n": n, "k": k, "p": p, "m": m, "d": d, "directed": directed}
        fam = {"kind": family, "count": count, **{a: v for a, v in params.items() if v is not None}}
        if sizes is not None:
            try:
                fam["sizes"] = [int(s) for s in sizes.split(",")]
            except ValueError:
                raise ParameterError(f"--sizes must be comma-separated integers, got {sizes!r}") from None
        rec = parse_recipe({"population": {"name": family}, "family": [fam]})
    pop = sample_population(rec, seed)
    write_population(pop, output)
    _print_summary(pop)
    dup = sum(c - 1 for c in pop.duplicates().values())
    console.print(f"wrote {len(pop)} topologies ({dup} duplicate(s)) to {output}")


def _print_summary(pop) -> None:
    df = pop.summary()
    table = Table(title=f"population ({len(pop)} graphs, seed {pop.seed})")
    table.add_column("family")
    for c in df.columns:
        table.add_column(c, justify="right")
    for fam, row in df.iterrows():
        table.add_row(str(fam), *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


# -- features -------------------------------------------------------------------------------
@app.command()
@click.argument("population", type=_path, required=False)
@click.option("-o", "--output", type=_path, help="Table to write (.csv or .parquet).")
@click.option("--names", help="Comma-separated features or groups (default: all).")
@click.option("-j", "--jobs", type=int, default=-1, show_default=True, help="Worker processes (-1: every core).")
@click.option("--list", "list_", is_flag=True, help="Print the feature registry and exit.")
def features(population, output, names, jobs, list_) -> None:
    """Compute the graph features of every topology into a table."""
    from topowire.features import feature_table, list_features, resolve_names

    if list_:
        table = Table(title="features")
        for col in ("name", "group", "doc"):
            table.add_column(col)
        for row in list_features().itertuples(index=False):
            table.add_row(*row)
        console.print(table)
        return
    if population is None or output is None:
        raise ParameterError("features needs a POPULATION file and -o OUTPUT (or --list)")
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ParameterError(f"output {str(output)!r} must end in .csv or .parquet")
    resolve_names(names)
    from topowire.topology import read_population

    pop = read_population(population)
    df = feature_table(pop, names, n_jobs=jobs, progress=sys.stderr.isatty())
    from topowire._io import atomic_path

    with atomic_path(output) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, float_format="%.17g")
        else:
            try:
                df.to_parquet(tmp)
            except ImportError:
                raise ParameterError("writing .parquet needs pyarrow (pip install pyarrow); use .csv") from None
    console.print(f"wrote {df.shape[1]} features of {df.shape[0]} topologies to {output}")


# -- show ------------------------------------------------------------------------------------
@app.command()
@click.argument("population", type=_path)
@click.option("--id", "id_", help="Show one topology.")
@click.option("--png", type=_path, help="Draw the topology (the first, or --id) to a PNG.")
def show(population, id_, png) -> None:
    """Summarise a population; optionally draw one of its graphs."""
    from topowire.topology import read_population

    pop = read_population(population)
    _print_summary(pop)
    topo = pop[0]
    if id_ is not None:
        try:
            topo = pop[id_]
        except KeyError:
            raise ParameterError(f"no topology with id {id_!r} in {population}") from None
        console.print(f"{topo!r}  params={dict(topo.params)}  seed={topo.seed}  density={topo.density:.4g}")
    if png is not None:
        from topowire.report import draw_topology

        draw_topology(topo, png)
        console.print(f"drew {topo.id} to {png}")


# -- convert -----------------------------------------------------------------------------------
@app.command()
@click.argument("inputs", type=_path, nargs=-1, required=True)
@click.option("-o", "--output", type=_path, required=True,
              help="A population .jsonl, or a .graphml/.gml/.edgelist/.npy graph file.")
@click.option("--id", "id_", help="With a population input: the topology to write (default: the first).")
@click.option("--directed/--undirected", default=None, help="Direction of header-less edge lists.")
def convert(inputs, output, id_, directed) -> None:
    """Convert graph files into a population, or one topology of a population into a graph file."""
    from topowire.topology import Population, read_graph, read_population, write_graph, write_population

    if output.suffix.lower() == ".jsonl":
        pop = Population(tuple(read_graph(p, directed=directed) for p in inputs))
        write_population(pop, output)
        console.print(f"wrote {len(pop)} topologies to {output}")
        return
    if len(inputs) != 1 or inputs[0].suffix.lower() != ".jsonl":
        raise ParameterError("to write a single graph file, give exactly one population .jsonl input")
    pop = read_population(inputs[0])
    try:
        topo = pop[id_] if id_ is not None else pop[0]
    except KeyError:
        raise ParameterError(f"no topology with id {id_!r} in {inputs[0]}") from None
    write_graph(topo, output)
    console.print(f"wrote {topo.id} to {output}")


# -- compile / export --------------------------------------------------------------------------
@app.command("compile")
@click.argument("population", type=_path)
@click.option("--arch", "kind", default="gru", show_default=True,
              help="iterative, rnn-tanh, rnn-relu, lstm, gru or wcrnn.")
@click.option("--orientation", default="dag", show_default=True, help="dag, random-dag, both or as-is.")
@click.option("--inputs", default="sources", show_default=True, help="all, sources, or k (top-k by degree).")
@click.option("--outputs", default="sinks", show_default=True, help="all or sinks.")
@click.option("--d-in", type=int, default=7, show_default=True, help="Data width.")
@click.option("--d-out", type=int, default=2, show_default=True, help="Readout width (classes).")
@click.option("--activation", default="relu", show_default=True, help="Activation of the iterative map.")
@click.option("--iterations", type=int, help="K of the iterative map (default: depth + 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation seed of every model.")
@click.option("-o", "--output", type=_path, required=True, help="Directory for the models and index.csv.")
def compile_(population, kind, orientation, inputs, outputs, d_in, d_out, activation, iterations, seed, output):
    """Compile every topology of a population into a saved model (safetensors + spec)."""
    import os
    import shutil
    import tempfile

    import pandas as pd

    from topowire.compiler import Arch, compile
    from topowire.compiler.export import save
    from topowire.topology import read_population

    roles = int(inputs) if inputs.lstrip("-").isdigit() else inputs
    arch = Arch(kind, d_in=d_in, d_out=d_out, orientation=orientation, inputs=roles, outputs=outputs,
                activation=activation, iterations=iterations)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ParameterError(f"output {str(output)!r} exists and is not an empty directory")
    pop = read_population(population)
    models = [compile(t, arch, seed=seed) for t in pop]  # every error is raised before any write
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        rows = []
        for i, (t, m) in enumerate(zip(pop, models)):
            name = f"{i:05d}_{t.id}.safetensors"
            save(m, tmp / name, topology=t)
            rows.append({"index": i, "id": t.id, "family": t.family, "n": t.n, "edges": t.n_edges,
                         "off_path": m.wiring.n_off_path, **{f"params_{k}": v for k, v in m.parameter_counts().items()},
                         "file": name})
        pd.DataFrame(rows).to_csv(tmp / "index.csv", index=False)
        if output.exists():
            output.rmdir()
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    console.print(f"compiled {len(models)} {kind} models to {output}/ (index.csv lists them)")


@app.command("export")
@click.argument("model", type=_path)
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("-o", "--output", type=_path, required=True, help="File to write.")
@click.option("--seq-len", type=int, default=20, show_default=True, help="Fixed sequence length (recurrent).")
@click.option("--batch", type=int, default=1, show_default=True, help="Fixed batch size.")
def export_(model, fmt, output, seq_len, batch):
    """Export a saved model to ONNX or TorchScript (fixed input shape)."""
    from topowire.compiler.export import export_onnx, export_torchscript, load

    if seq_len < 1 or batch < 1:
        raise ParameterError(f"--seq-len and --batch must be >= 1, got {seq_len} and {batch}")
    module = load(model)
    (export_onnx if fmt == "onnx" else export_torchscript)(module, output, batch=batch, seq_len=seq_len)
    console.print(f"exported {model} to {output} ({fmt})")


# -- train / results ----------------------------------------------------------------------------
@app.command()
@click.argument("population", type=_path)
@click.option("--arch", "kind", default="gru", show_default=True, help="iterative, rnn-tanh, rnn-relu, lstm, gru or wcrnn.")
@click.option("--task", default="reber", show_default=True, help="reber, reber-next, embedded-reber, adding, mnist, ...")
@click.option("--db", type=_path, required=True, help="SQLite results database (created or resumed).")
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--optimizer", default="adam", show_default=True, help="adam or sgd.")
@click.option("--clip", type=float, default=5.0, show_default=True, help="Per-model gradient-norm clip (0: off).")
@click.option("--replicates", type=int, default=1, show_default=True, help="Initialisation seeds per topology.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--orientation", default="dag", show_default=True)
@click.option("--inputs", default="sources", show_default=True)
@click.option("--outputs", default="sinks", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--bf16", is_flag=True, help="bf16 autocast (CUDA).")
@click.option("--memory-mb", type=int, default=2048, show_default=True, help="Memory budget of one pack.")
@click.option("--chunk-size", type=int, help="Models per pack (overrides --memory-mb).")
@click.option("--n-train", type=int, help="Training examples (task default if omitted).")
@click.option("--n-test", type=int, help="Test examples.")
@click.option("--data-dir", type=_path, help="MNIST folder with the IDX files.")
@click.option("--thesis-csv", type=_path, help="Reber data in the thesis's string,label CSV.")
@click.option("--stability", type=float, help="Keep every model's ||W_hh||_2 <= this (Miller & Hardt), in (0, 1].")
@click.option("--residual", default="homogeneous", show_default=True,
              help="wcrnn: R homogeneous, rotational or heterogeneous.")
@click.option("--radius", type=float, default=0.9, show_default=True, help="wcrnn: r of R.")
@click.option("--phi", type=float, default=0.0, show_default=True, help="wcrnn: rotation angle of R (radians).")
@click.option("--gamma", type=float, default=0.1, show_default=True, help="wcrnn: coupling strength.")
def train(population, kind, task, db, epochs, batch_size, lr, optimizer, clip, replicates, seed, orientation,
          inputs, outputs, device, bf16, memory_mb, chunk_size, n_train, n_test, data_dir, thesis_csv,
          stability, residual, radius, phi, gamma) -> None:
    """Train every topology of a population (packed), storing results in a resumable database."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from topowire.compiler import Arch
    from topowire.data import make_task
    from topowire.store import Store
    from topowire.topology import read_population
    from topowire.train import TrainConfig, train_population

    roles = int(inputs) if inputs.lstrip("-").isdigit() else inputs
    arch = Arch(kind, orientation=orientation, inputs=roles, outputs=outputs, residual=residual, r=radius, phi=phi,
                gamma=gamma)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                         clip=clip if clip > 0 else None, replicates=replicates, seed=seed, device=device,
                         bf16=bf16, memory_mb=memory_mb, chunk_size=chunk_size, stability=stability)
    pop = read_population(population)
    options = {k: v for k, v in (("n_train", n_train), ("n_test", n_test),
                                 ("data_dir", str(data_dir) if data_dir else None),
                                 ("thesis_csv", str(thesis_csv) if thesis_csv else None)) if v is not None}
    task_data = make_task(task, seed=seed, **options)
    start = time.perf_counter()
    with Store(db) as store, Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                      console=console, disable=not sys.stdout.isatty()) as bar:
        job = bar.add_task("train", total=len(pop) * replicates, rate="")
        first: list[int] = []

        def progress(done: int, total: int) -> None:
            first.append(done) if not first else None
            rate = (done - first[0]) / max(1e-9, time.perf_counter() - start)
            bar.update(job, completed=done, total=total, rate=f"{rate:.2f} models/s")
            if not sys.stdout.isatty():
                print(f"trained {done}/{total} models", flush=True)

        frame = train_population(list(pop), arch, task_data, config, store=store, progress=progress)
    ok = frame[frame["status"] == "ok"]
    console.print(f"{len(frame)} models in run {frame['run_id'].iloc[0] if len(frame) else '-'}: "
                  f"{len(ok)} ok, {len(frame) - len(ok)} diverged; mean test accuracy "
                  f"{ok['test_acc'].mean():.3f}; results in {db}")


@app.command()
@click.argument("model", type=_path)
@click.option("--rate", type=float, required=True, help="Fraction of the selected connections to remove, in [0, 1].")
@click.option("--on", "on", default="both", show_default=True, help="ih (input), hh (recurrent) or both.")
@click.option("--scope", default="global", show_default=True, help="global (one ranking) or layer (per tensor).")
@click.option("--retrain", type=int, default=0, show_default=True, help="Retraining epochs with the masks fixed.")
@click.option("--task", default="reber", show_default=True, help="Task for retraining and evaluation.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-train", type=int, help="Training examples (task default if omitted).")
@click.option("--n-test", type=int, help="Test examples.")
@click.option("--topology", "topology_out", type=_path, help="Also write the pruned connectivity as a population JSONL.")
@click.option("-o", "--output", type=_path, required=True, help="Pruned model (.safetensors).")
def prune(model, rate, on, scope, retrain, task, lr, batch_size, seed, n_train, n_test, topology_out, output) -> None:
    """Magnitude-prune a trained model (biases and readout kept), optionally retrain with the masks fixed."""
    from topowire.compiler.export import load, save
    from topowire.data import make_task
    from topowire.dynamics.prune import check_arguments, network_topology
    from topowire.dynamics.prune import prune as run_prune
    from topowire.train import TrainConfig, evaluate_module, train_module

    check_arguments(rate, on, scope)
    if retrain < 0:
        raise ParameterError(f"--retrain must be >= 0 epochs, got {retrain}")
    net = load(model)
    options = {k: v for k, v in (("n_train", n_train), ("n_test", n_test)) if v is not None}
    data = make_task(task, seed=seed, **options)
    if (net.arch.d_in, net.arch.d_out) != (data.d_in, data.d_out):
        raise ParameterError(f"the model reads {net.arch.d_in} features into {net.arch.d_out} outputs, task {task!r} "
                             f"has {data.d_in} and {data.d_out}")
    config = TrainConfig(epochs=max(1, retrain), batch_size=batch_size, lr=lr, seed=seed)
    before = evaluate_module(net, data)["test_acc"]
    counts = run_prune(net, rate, on, scope)[0]
    pruned = evaluate_module(net, data)["test_acc"]
    after = train_module(net, data, config)["test_acc"] if retrain else pruned
    save(net, output)
    if topology_out is not None:
        from topowire.topology import Population, write_population

        write_population(Population([network_topology(net)]), topology_out)
    kept = ", ".join(f"{k} {v}/{counts[k + '_before']}" for k, v in counts.items() if not k.endswith("_before"))
    console.print(f"pruned {model} at rate {rate:g} on {on} ({scope}): connections kept {kept}")
    console.print(f"test accuracy {before:.3f} -> {pruned:.3f} pruned" +
                  (f" -> {after:.3f} after {retrain} retraining epochs" if retrain else "") + f"; wrote {output}")


@app.command()
@click.option("--db", type=_path, required=True, help="Results database.")
@click.option("-o", "--output", type=_path, required=True, help="CSV to write.")
@click.option("--run", "run_id", help="Only this run id.")
def results(db, output, run_id) -> None:
    """Export trained models' results as a flat CSV (one row per model)."""
    import json

    from topowire._io import atomic_path
    from topowire.store import open_existing

    with open_existing(db) as store:
        frame = store.results(run_id)
    if frame.empty:
        raise ParameterError(f"no results in {db}" + (f" for run {run_id!r}" if run_id else ""))
    frame = frame.copy()
    frame["curves"] = frame["curves"].map(json.dumps)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False)
    console.print(f"wrote {len(frame)} results to {output}")


# -- fit / predict / report / run ------------------------------------------------------------------
def _study_frames(db: Path, run_id: str | None, features_path: Path | None):
    """Results of one run joined with graph features (computed from the stored topologies)."""
    import json

    import pandas as pd

    from topowire.features import feature_table
    from topowire.store import open_existing
    from topowire.topology import Topology

    with open_existing(db) as store:
        results = store.results(run_id)
        if results.empty:
            raise ParameterError(f"no results in {db}" + (f" for run {run_id!r}" if run_id else ""))
        runs = results["run_id"].unique()
        if len(runs) > 1:
            raise ParameterError(f"{db} holds {len(runs)} runs ({', '.join(runs)}): choose one with --run")
        rows = store.conn.execute("SELECT id, n, directed, edges, family FROM topologies").fetchall()
    topologies = {r[0]: Topology(r[1], json.loads(r[3]), bool(r[2]), family=r[4]) for r in rows}
    if features_path is not None:
        features = _read_table(features_path).set_index("id")
    else:
        ids = list(dict.fromkeys(results["topology_id"]))
        features = feature_table([topologies[i] for i in ids], n_jobs=-1)
    missing = set(results["topology_id"]) - set(features.index)
    if missing:
        raise ParameterError(f"the feature table lacks {len(missing)} trained topologies (e.g. {sorted(missing)[0]})")
    return results, features[~features.index.duplicated()], topologies, pd


def _dynamics_for(db: Path, meta: dict, ids: list[str], topologies: dict):
    """Dynamics features at init of a stored run's topologies, and the run's training seed."""
    import json

    from topowire.compiler import Arch
    from topowire.data import make_task
    from topowire.dynamics.features import dynamics_table
    from topowire.store import open_existing

    with open_existing(db) as store:
        row = store.conn.execute("SELECT config FROM runs WHERE run_id = ?", (meta["run_id"],)).fetchone()
    train_seed = int(json.loads(row[0]).get("seed", 0))
    arch = Arch.from_dict(meta["arch"])
    if not arch.masked_cell:
        raise ParameterError(f"--dynamics needs a recurrent run, this one is {arch.kind!r}")
    task = make_task(meta["task"], seed=train_seed)
    return dynamics_table([topologies[i] for i in ids], arch, task, seed=train_seed), train_seed


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise ParameterError(f"table {str(path)!r} does not exist")
    try:
        table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise ParameterError(f"cannot read table {str(path)!r}: {exc}") from None
    if table.empty:
        raise ParameterError(f"table {str(path)!r} is empty")
    return table


def _print_scores(cv) -> None:
    table = Table(title=f"cross-validated scores ({cv.n_rows} topologies)")
    t = cv.table()
    for col in t.columns:
        table.add_column(col)
    for row in t.itertuples(index=False):
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if cv.ceiling:
        console.print(f"noise ceiling (between-topology share of variance): {cv.ceiling['ceiling']:.3f}")
    console.print("top features: " + ", ".join(f"{f} ({v:.3f})" for f, v in
                                                zip(cv.importances["feature"].head(8), cv.importances["importance"].head(8))))


@app.command()
@click.option("--db", type=_path, help="Results database of a training run.")
@click.option("--run", "run_id", help="Run id (when the database holds several).")
@click.option("--features", "features_path", type=_path, help="Feature table (default: computed from the topologies).")
@click.option("--table", "table_path", type=_path, help="Fit from any table of features and a target instead.")
@click.option("--target", default="test_acc", show_default=True, help="Column to predict.")
@click.option("--columns", help="Comma-separated feature columns (with --table; default: every numeric column).")
@click.option("--group", default="family", show_default=True, help="Column for leave-one-group-out CV.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--trees", type=int, default=300, show_default=True, help="Trees in the forest.")
@click.option("--dynamics", is_flag=True,
              help="With --db: add the dynamics features of each network at init (max Lyapunov exponent, "
                   "spectral radius and norm of W_hh) and report the R² they add over graph features.")
@click.option("-o", "--output", type=_path, required=True, help="Predictor file (.skops; metadata in .skops.json).")
def fit(db, run_id, features_path, table_path, target, columns, group, seed, trees, dynamics, output) -> None:
    """Fit a random-forest predictor of trained performance, cross-validated beside baselines."""
    from topowire.predict import cross_validate, fit_predictor, save_predictor

    meta = {}
    extra = None
    if dynamics and db is None:
        raise ParameterError("--dynamics needs --db (the run's arch and task rebuild the networks)")
    if (db is None) == (table_path is None):
        raise ParameterError("give either --db (a training run) or --table (any feature table), not both or neither")
    if db is not None:
        from topowire.pipeline import study_table

        results, features, topologies, _ = _study_frames(db, run_id, features_path)
        table = study_table(results, features)
        names = list(features.columns) + ["params"]
        meta = {"run_id": results["run_id"].iloc[0], "arch": __import__("json").loads(results["arch"].iloc[0]),
                "task": results["task"].iloc[0]}
        if dynamics:
            dyn, meta["train_seed"] = _dynamics_for(db, meta, list(dict.fromkeys(results["topology_id"])), topologies)
            table = table.join(dyn, on="topology_id")
            extra = {"forest-graph": names}
            names = names + list(dyn.columns)
    else:
        table = _read_table(table_path)
        if columns:
            names = [c.strip() for c in columns.split(",") if c.strip()]
        else:
            names = [c for c in table.columns if c not in (target, group, "id", "topology_id")
                     and table[c].dtype.kind in "biuf"]
    cv = cross_validate(table, target, names, groups=group, seed=seed, n_estimators=trees, extra_forests=extra)
    predictor = fit_predictor(table, target, names, seed=seed, n_estimators=trees,
                              meta={**meta, "scores": cv.table().to_dict(orient="records"),
                                    "noise_ceiling": cv.ceiling,
                                    "importances": cv.importances.to_dict(orient="records")})
    save_predictor(predictor, output)
    _print_scores(cv)
    if extra:
        t = cv.table().set_index(["scheme", "model"])
        for scheme in t.index.get_level_values(0).unique():
            gain = t.loc[(scheme, "forest"), "r2"] - t.loc[(scheme, "forest-graph"), "r2"]
            console.print(f"dynamics features add {gain:+.3f} R² over graph features alone ({scheme})")
    console.print(f"wrote {output} (+ {output}.json)")


@app.command()
@click.argument("predictor_path", type=_path)
@click.argument("source", type=_path)
@click.option("-o", "--output", type=_path, required=True, help="Predictions CSV.")
def predict(predictor_path, source, output) -> None:
    """Predict trained performance of a population (JSONL) or a feature table (CSV), without training."""
    from topowire._io import atomic_path
    from topowire.predict import load_predictor
    from topowire.predict import predict as run_predict

    predictor = load_predictor(predictor_path)
    if source.suffix.lower() == ".jsonl":
        from topowire.compiler import Arch
        from topowire.features import feature_table, resolve_names
        from topowire.pipeline import _params_for
        from topowire.topology import read_population

        pop = read_population(source)
        from topowire.dynamics.features import DYNAMICS_FEATURES

        graph_features = [f for f in predictor.features if f != "params" and f not in DYNAMICS_FEATURES]
        dyn = [f for f in predictor.features if f in DYNAMICS_FEATURES]
        resolve_names(graph_features)
        table = feature_table(pop, graph_features, n_jobs=-1)
        if dyn:
            from topowire.data import make_task
            from topowire.dynamics.features import dynamics_table

            if "arch" not in predictor.meta or "task" not in predictor.meta:
                raise ParameterError("the predictor uses dynamics features but records no arch and task")
            seed = int(predictor.meta.get("train_seed", 0))
            task = make_task(predictor.meta["task"], seed=seed)
            table = table.join(dynamics_table(list(pop), Arch.from_dict(predictor.meta["arch"]), task, seed=seed)[dyn])
        if "params" in predictor.features:
            if "arch" not in predictor.meta:
                raise ParameterError("the predictor uses 'params' but records no arch to count them")
            table = table.join(_params_for(pop, Arch.from_dict(predictor.meta["arch"]), 0))
        table = table[~table.index.duplicated()]
    else:
        table = _read_table(source)
        table = table.set_index("id") if "id" in table.columns else table
    values = run_predict(predictor, table)
    with atomic_path(output) as tmp:
        values.rename(f"predicted_{predictor.target}").to_csv(tmp)
    console.print(f"wrote {len(values)} predictions to {output}")


@app.command()
@click.option("--db", type=_path, required=True, help="Results database of a training run.")
@click.option("--run", "run_id", help="Run id (when the database holds several).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--trees", type=int, default=300, show_default=True, help="Trees in the cross-validated forest.")
@click.option("-o", "--output", type=_path, required=True, help="Report folder (index.html + figures).")
def report(db, run_id, seed, trees, output) -> None:
    """Write the HTML report of a training run."""
    from topowire.pipeline import study_table
    from topowire.predict import cross_validate
    from topowire.report import write_report

    results, features, topologies, _ = _study_frames(db, run_id, None)
    cv = cross_validate(study_table(results, features), "test_acc", list(features.columns) + ["params"], seed=seed,
                        n_estimators=trees)
    page = write_report(output, results, features, cv, topologies=topologies,
                        summary={"run": results["run_id"].iloc[0], "models": str(len(results))})
    console.print(f"wrote {page}")


@app.command()
@click.argument("recipe", type=_path, required=False)
@click.option("--task", default="reber", show_default=True)
@click.option("--arch", "kind", default="gru", show_default=True)
@click.option("--epochs", type=int, default=6, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=_path, default=Path("topowire-study"), show_default=True, help="Study folder.")
def run(recipe, task, kind, epochs, seed, output) -> None:
    """The main job: sample, featurise, train, fit, predict, report and export, into one folder."""
    import time

    from topowire.compiler import Arch
    from topowire.pipeline import StudyConfig, default_recipe, run_study
    from topowire.topology import load_recipe
    from topowire.train import TrainConfig

    rec = load_recipe(recipe) if recipe is not None else default_recipe()
    arch = Arch(kind, orientation="both", inputs="all", outputs="all") if kind != "iterative" else Arch(kind)
    defaults = StudyConfig()
    config = StudyConfig(task=task, arch=arch, seed=seed, n_train=defaults.n_train if task == "reber" else None,
                         train=TrainConfig(**{**defaults.train.to_dict(), "epochs": epochs, "seed": seed}))
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        console.print(f"  trained {done}/{total} models ({time.perf_counter() - start:.0f} s)")

    summary = run_study(rec, output, config, log=lambda m: console.print(m), progress=progress)
    table = Table(title=f"topowire run: {rec.name}", show_header=False)
    for k, v in summary.items():
        table.add_row(k, v)
    console.print(table)


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
