"""The command line teaches itself: help on every option, defaults that learn, progress."""

import io

import click
import pytest
from rich.console import Console

from topowire import console
from topowire.cli import app, main
from topowire.topology import Population, er_graph, write_population


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
