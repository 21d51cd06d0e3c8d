"""The command line teaches itself: help on every option, defaults that learn, progress."""

import dataclasses
import io
import re
from pathlib import Path

import click
import pytest
from rich.console import Console

from topowire import console
from topowire.cli import _param_help, app, main
from topowire.compiler import Arch
from topowire.pipeline import StudyConfig
from topowire.topology import Population, er_graph, write_population
from topowire.train import TrainConfig


@pytest.mark.parametrize("name", sorted(app.commands))
def test_every_option_of_every_command_has_help(name):
    command = app.commands[name]
    ctx = click.Context(command, info_name=name)
    text = command.get_help(ctx)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} has no help"
            assert param.opts[0] in text
    if name in ("train", "run"):  # choices come from the registries
        assert "layered" in text and "wcrnn" in text and "embedded-reber" in text and "psmnist" in text


@pytest.mark.parametrize("command, configs", [
    ("train", (TrainConfig(), Arch(), StudyConfig())),
    ("run", (StudyConfig().train, StudyConfig().arch, StudyConfig())),
])
def test_config_options_take_default_and_help_from_the_config(command, configs):
    """An option named after a config field shows that config's value and its documented meaning."""
    seen = set()
    for param in app.commands[command].params:
        for config in configs:
            fields = {f.name: f for f in dataclasses.fields(config)}
            if param.name in fields and param.name not in seen and (command, param.name) != ("run", "seed"):
                seen.add(param.name)
                unset = fields[param.name].default is None
                assert param.default == (None if unset else getattr(config, param.name)), param.name
                assert param.help == _param_help(type(config))[param.name]
    assert {"epochs", "lr", "kind", "orientation", "task", "replicates"} <= seen
    defaults = {p.name: p.default for p in app.commands[command].params}
    assert (defaults["epochs"], defaults["kind"]) == ((5, "gru") if command == "train" else (8, "rnn-tanh"))


@pytest.mark.parametrize("args, study_seed, train_seed", [([], None, 0), (["--seed", "3"], 3, 3)])
def test_run_seed_seeds_the_whole_study_and_unset_keeps_the_recipes(monkeypatch, tmp_path, args, study_seed,
                                                                    train_seed):
    """`run --seed S` seeds the population, folds, forest and training; unset, the recipe's seed draws."""
    from topowire import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "run_study", lambda rec, out, config, **kw: seen.update(config=config) or {})
    assert main(["run", *args, "--epochs", "2", "-o", str(tmp_path / "s")]) == 0
    config = seen["config"]
    assert (config.seed, config.train.seed) == (study_seed, train_seed)
    assert config.train == dataclasses.replace(StudyConfig().train, epochs=2, seed=train_seed)
    assert config.arch == StudyConfig().arch


def test_a_documented_parameter_reads_as_plain_help():
    helps = _param_help(TrainConfig)
    assert helps["epochs"] == "Passes over the training set."
    assert helps["fused"].startswith("Run each time step of a dense recurrent forward as one torch.compile program; ")
    assert "``" not in " ".join(helps.values()) and ":func:" not in " ".join(helps.values())
    assert _param_help(Arch)["r"] == "wcrnn only: the radius r of R."


def test_the_command_line_stays_thin():
    """cli.py parses, calls the library and prints: no SQL, no store connection, no frames built."""
    source = (Path(__file__).parents[1] / "src" / "topowire" / "cli.py").read_text()
    assert len(source.splitlines()) < 350
    assert not re.search(r"SELECT|INSERT|\.conn\b|DataFrame\(|\bpd\.", source)


def test_train_defaults_learn_reber(tmp_path):
    """`topowire train` with nothing but --task and --db trains models that learn (measured: 0.92)."""
    import sqlite3

    pop = tmp_path / "er.jsonl"
    write_population(Population(tuple(er_graph(24, 0.2, seed=i) for i in range(12))), pop)
    assert main(["train", str(pop), "--task", "reber", "--db", str(tmp_path / "r.db")]) == 0
    accs = [r[0] for r in sqlite3.connect(tmp_path / "r.db").execute("SELECT test_acc FROM results")]
    assert len(accs) == 12 and sum(accs) / len(accs) >= 0.75


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(monkeypatch, terminal):
    buf = io.StringIO()
    fake = Console(file=buf, force_terminal=terminal, width=100)
    monkeypatch.setattr(console, "console", fake)
    with console.progress() as update:
        for done in range(0, 21, 5):
            update("training", done, 20)
    text = buf.getvalue()
    if terminal:
        assert "━" in text and "20/20" in text and "training" in text
    else:
        assert "━" not in text and "training: 20/20" in text.splitlines()[-1]


def test_a_long_message_stays_one_line():
    """A results line in a log or a pipe is not cut at the console's width."""
    line = "225 models in run 7737de7978da3767: 225 ok, 0 diverged, 0 failed; mean test accuracy 0.796 " * 2
    with console.console.capture() as captured:
        console.console.print(line, highlight=False)
    assert captured.get() == line + "\n"
