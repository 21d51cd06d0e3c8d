"""Commands on models: compile, export, train, prune."""

from __future__ import annotations

import click

from topowire._io import check_output
from topowire.cli._app import (
    _ARCH,
    _TRAIN,
    _arch_options,
    _choice,
    _default,
    _executor,
    _executor_options,
    _given,
    _path,
    _train_options,
    app,
)
from topowire.compiler.arch import RESIDUALS, Arch
from topowire.compiler.functional import ACTIVATIONS
from topowire.console import console, progress
from topowire.dynamics.prune import ON, SCOPES
from topowire.train.config import OPTIMIZERS, TrainConfig, check_device


@app.command("compile")
@click.argument("population", type=_path)
@_arch_options()
@click.option("--d-in", type=int, **_default("d_in", "Data width.", _ARCH))
@click.option("--d-out", type=int, **_default("d_out", "Readout width (classes).", _ARCH))
@click.option("--activation", **_choice(ACTIVATIONS, "Activation of the iterative map", _ARCH.activation))
@click.option("--iterations", type=int, help="K of the iterative map (default: depth + 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation seed of every model.")
@click.option("-o", "--output", type=_path, required=True, help="New directory for the models and index.csv.")
def compile_(population, seed, output, **o):
    """Compile every topology of a population into a saved model (safetensors + spec)."""
    check_output(output, population)
    from topowire.compiler.export import save_models
    from topowire.topology import read_population

    count = save_models(read_population(population), _given(Arch, o), output, seed=seed)
    console.print(f"compiled {count} {o['kind']} models to {output}/ (index.csv lists them)")


@app.command("export")
@click.argument("model", type=_path)
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True, help="onnx or torchscript.")
@click.option("-o", "--output", type=_path, required=True, help="File to write.")
@click.option("--seq-len", type=click.IntRange(1), default=20, show_default=True,
              help="Length of the example sequence (recurrent models take any length).")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True,
              help="Batch size (fixed for static models; recurrent models take any).")
def export_(model, fmt, output, seq_len, batch):
    """Export a saved model to ONNX or TorchScript; a recurrent one reads (x, lengths)."""
    check_output(output, model)
    from topowire.compiler.export import export_onnx, export_torchscript, load

    (export_onnx if fmt == "onnx" else export_torchscript)(load(model), output, batch=batch, seq_len=seq_len)
    console.print(f"exported {model} to {output} ({fmt})")


@app.command()
@click.argument("population", type=_path)
@_arch_options()
@_train_options()
@click.option("--db", type=_path, required=True, help="SQLite results database (created or resumed).")
@click.option("--optimizer", **_choice(OPTIMIZERS, "Optimizer", _TRAIN.optimizer))
@click.option("--clip", **_default("clip", "Per-model gradient-norm clip (0: off).", type=float))
@click.option("--replicates", **_default("replicates", "Initialisation seeds per topology.", type=int))
@click.option("--device", **_default("device", "cpu or cuda[:i]."))
@click.option("--bf16", is_flag=True, default=None, help="bf16 autocast of the forward pass (CUDA).")
@click.option("--fused", is_flag=True, default=None, help="Each time step as one torch.compile program (eager "
              "where compiling fails; same results to float rounding).")
@click.option("--memory-mb", **_default("memory_mb", "Memory budget of one pack (MiB).", type=int))
@click.option("--chunk-size", type=int, help="Models per pack (overrides --memory-mb).")
@_executor_options
@click.option("--data-dir", type=_path, help="MNIST folder with the IDX files (default: the bundled subset).")
@click.option("--thesis-csv", type=_path, help="Reber data in the thesis's string,label CSV.")
@click.option("--stability", type=float, help="Keep every model's ||W_hh||_2 <= this (Miller & Hardt), in (0, 1].")
@click.option("--residual", **_choice(RESIDUALS, "wcrnn: the residual R", _ARCH.residual))
@click.option("--radius", "r", type=float, **_default("r", "wcrnn: r of R.", _ARCH))
@click.option("--phi", type=float, **_default("phi", "wcrnn: rotation angle of R (radians).", _ARCH))
@click.option("--gamma", type=float, **_default("gamma", "wcrnn: coupling strength.", _ARCH))
def train(population, task, n_train, n_test, db, data_dir, thesis_csv, **o) -> None:
    """Train every topology of a population (packed), storing results in a resumable database."""
    check_output(db, population, data_dir, thesis_csv)
    from topowire.data import make_task
    from topowire.store import Store
    from topowire.topology import read_population
    from topowire.train import train_population

    arch = _given(Arch, o)
    config = _given(TrainConfig, o, clip=None if o["clip"] is None else o["clip"] or None)
    check_device(config.device)
    executor = _executor(o, config.device)
    pop = list(read_population(population))
    data = make_task(task, seed=config.seed, n_train=n_train, n_test=n_test, data_dir=data_dir, thesis_csv=thesis_csv)
    with Store(db) as store, progress() as update:
        frame = train_population(pop, arch, data, config, store=store, executor=executor,
                                 progress=lambda d, t: update("training", d, t))
    ok, status = frame[frame["status"] == "ok"], frame["status"].value_counts()
    console.print(f"{len(frame)} models in run {frame['run_id'].iloc[0]}: {len(ok)} ok, {status.get('diverged', 0)} "
                  f"diverged, {status.get('failed', 0)} failed; mean test accuracy {ok['test_acc'].mean():.3f}; "
                  f"results in {db}")


@app.command()
@click.argument("model", type=_path)
@click.option("--rate", type=float, required=True, help="Fraction of the selected connections to remove, in [0, 1].")
@click.option("--on", "on", **_choice(ON, "Connections to prune", "both") | {"default": "both"})
@click.option("--scope", **_choice(SCOPES, "Ranking: one global or per tensor", "global") | {"default": "global"})
@click.option("--retrain", type=click.IntRange(0), default=0, show_default=True, help="Retraining epochs, masks fixed.")
@_train_options()
@click.option("--topology", "topology_out", type=_path, help="Also write the pruned connectivity as a population.")
@click.option("-o", "--output", type=_path, required=True, help="Pruned model (.safetensors).")
def prune(model, output, rate, on, scope, retrain, **o):
    """Magnitude-prune a trained model (biases and readout kept), optionally retrain with the masks fixed."""
    check_output(output, model, o["topology_out"])
    if o["topology_out"] is not None:
        check_output(o["topology_out"], model, output)
    from topowire.dynamics.prune import prune_model

    report = prune_model(model, output, rate=rate, on=on, scope=scope, retrain=retrain, **o)
    kept = ", ".join(f"{k} {v}/{report['counts'][k + '_before']}" for k, v in report["counts"].items()
                     if not k.endswith("_before"))
    console.print(f"pruned {model} at rate {rate:g} on {on} ({scope}): connections kept {kept}")
    console.print(f"test accuracy {report['before']:.3f} -> {report['pruned']:.3f} pruned" +
                  (f" -> {report['after']:.3f} after {retrain} retraining epochs" if retrain else "") +
                  f"; wrote {output}")
