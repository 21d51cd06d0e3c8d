"""Commands on models: compile, export, train, prune."""

from __future__ import annotations

import click

from topowire import topology
from topowire._io import check_output
from topowire.cli import app
from topowire.cli.options import (
    EXECUTOR,
    PATH,
    WIRING,
    Checked,
    arch_of,
    fields,
    given,
    target_options,
    task_option_docs,
    task_options,
)
from topowire.compiler.arch import Arch
from topowire.compiler.export import export_onnx, export_torchscript, load, save_models
from topowire.console import console, progress
from topowire.data.tasks import make_task
from topowire.dynamics.prune import prune_model
from topowire.study import StudyConfig
from topowire.train import TrainConfig, results_line, train_population
from topowire.train.config import PROTOCOL_DEFAULTS, check_device
from topowire.train.executors import connect_executor

STUDY, TRAIN, ARCH = StudyConfig(), TrainConfig(), Arch()


@app.command("compile")
@click.argument("population", type=PATH)
@fields(ARCH, "kind", *WIRING, "d_in", "d_out")
@target_options
@click.option("--seed", type=Checked("seed"), default=0, show_default=True, help="Initialisation seed of every model.")
@click.option("-o", "--output", type=PATH, required=True, help="New directory for the models and index.csv.")
def compile_(population, seed, output, **o):
    """Compile every topology of a population into a saved model (safetensors + spec)."""
    check_output(output, population)
    count = save_models(topology.read_population(population), arch_of(o), output, seed=seed)
    console.print(f"compiled {count} {o['kind']} models to {output}/ (index.csv lists them)")


@app.command("export")
@click.argument("model", type=PATH)
@click.option("--format", "fmt", type=Checked("fmt"), required=True, help="Program format.")
@click.option("-o", "--output", type=PATH, required=True, help="File to write.")
@fields(export_torchscript, "seq_len", "batch")
def export_(model, fmt, output, seq_len, batch):
    """Export a saved model to ONNX or TorchScript; a recurrent one reads (x, lengths)."""
    check_output(output, model)
    (export_onnx if fmt == "onnx" else export_torchscript)(load(model), output, batch=batch, seq_len=seq_len)
    console.print(f"exported {model} to {output} ({fmt})")


@app.command()
@click.argument("population", type=PATH)
@fields(ARCH, "kind", *WIRING)
@fields(STUDY, "task", "n_train", "n_test")
@fields(TRAIN, "epochs", "batch_size", "lr", "seed", "optimizer", "momentum", *PROTOCOL_DEFAULTS, "clip", "replicates",
         "device", "bf16", "fused", "memory_mb", "chunk_size", "sub_pack", "stability")
@target_options
@click.option("--db", type=PATH, required=True, help="SQLite results database (created or resumed).")
@task_options
@fields(connect_executor, *EXECUTOR)
def train(population, task, n_train, n_test, db, **o) -> None:
    """Train every topology of a population (packed), storing results in a resumable database.

    Its defaults (gru, 5 epochs, 1 replicate, lr 0.01, batch 32) are the library's, not `run`'s quick study (rnn-tanh,
    8 epochs, 3 replicates); running it again on the same database resumes the run.
    """
    options = {k: o.pop(k) for k in task_option_docs()}
    check_output(db, population, *options.values())
    arch, config = arch_of(o), given(TrainConfig, o)
    executor = connect_executor(**{k: o.pop(k) for k in EXECUTOR}, device=check_device(config.device))
    pop = list(topology.read_population(population))
    data = make_task(task, seed=config.seed, n_train=n_train, n_test=n_test, **options)
    with progress() as update:
        frame = train_population(pop, arch, data, config, store=db, executor=executor, log=console.print,
                                 progress=lambda d, t: update("training", d, t))
    console.print(f"{results_line(frame)}; results in {db}")


@app.command()
@click.argument("model", type=PATH)
@fields(prune_model, "rate", "on", "scope", "retrain")
@fields(STUDY, "task", "n_train", "n_test")
@fields(TRAIN, "batch_size", "lr", "seed")
@fields(prune_model, "topology_out")
@click.option("-o", "--output", type=PATH, required=True, help="Pruned model (.safetensors).")
def prune(model, output, rate, on, scope, retrain, **o):
    """Magnitude-prune a trained model (biases and readout kept), optionally retrain masks fixed."""
    check_output(output, model, o["topology_out"])
    check_output(o["topology_out"], model, output)
    report = prune_model(model, output, rate=rate, on=on, scope=scope, retrain=retrain, **o)
    console.print(f"pruned {model} at rate {rate:g} on {on} ({scope}): {report}; wrote {output}")
