"""The ``topowire`` command line: parse, call the library, print. No logic of its own.

Every error caused by input (bad parameters, files, options) is printed as one line
``error: ...`` on stderr with exit status 2, and no output file is left half written.
Most options are parameters of the library function or config dataclass they feed, and
take their name, type, default and help from its signature and numpydoc ``Parameters``
(:mod:`topowire.cli.options`); choices come from the library's registries. The CLI
restates none.

Commands are loaded when they are run (:data:`COMMANDS`): ``topowire --version``,
``--help`` and the commands on graphs start without importing torch or scikit-learn.
"""

from __future__ import annotations

import importlib
import sys

import click

from topowire import __version__
from topowire._io import library_warnings, terminate_as_interrupt
from topowire.errors import TopowireError

__all__ = ["app", "main", "COMMANDS", "all_commands"]

#: Every command: its module here, and its first line (``--help`` lists them without importing them).
COMMANDS = {
    "generate": ("graphs", "Sample a population of random graphs from a recipe file or from one --family into JSONL."),
    "features": ("graphs", "Compute the graph features of every topology into a table."),
    "show": ("graphs", "Summarise a population (or a recipe's draw) and its (C, L) coverage; list or draw its graphs."),
    "convert": ("graphs", "Convert graph files into a population, or one topology of a population into a graph file."),
    "compile": ("models", "Compile every topology of a population into a saved model (safetensors + spec)."),
    "export": ("models", "Export a saved model to ONNX or TorchScript; a recurrent one reads (x, lengths)."),
    "train": ("models", "Train every topology of a population (packed), storing results in a resumable database."),
    "prune": ("models", "Magnitude-prune a trained model (biases and readout kept), optionally retrain masks fixed."),
    "results": ("study", "Export trained models' results as a flat table (one row per model)."),
    "fit": ("study", "Fit a predictor of trained performance, cross-validated beside baselines."),
    "predict": ("study", "Predict trained performance of a population (JSONL) or a feature table, without training."),
    "report": ("study", "Write the HTML report of a training run."),
    "run": ("study", "The main job: sample, featurise, train, fit, predict, report and export, into one folder."),
    "suggest": ("search", "Choose the next topologies to train: a forest's predictions and their spread, a batch "
                          "spread out."),
    "search": ("search", "Search a recipe's draw for its best wiring: suggest, train and refit until --budget are "
                         "trained."),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when one is run or its help is asked for."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name in COMMANDS and name not in self.commands:
            importlib.import_module(f"topowire.cli.{COMMANDS[name][0]}")
        return self.commands.get(name)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, line) for name, (_, line) in COMMANDS.items()])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="topowire")
def app() -> None:
    """Compile graph topologies into neural networks and predict how they train."""


def all_commands() -> dict[str, click.Command]:
    """Every command, loaded."""
    for module in dict.fromkeys(m for m, _ in COMMANDS.values()):
        importlib.import_module(f"topowire.cli.{module}")
    return dict(app.commands)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one line and exit 2 on bad input; SIGTERM cleans up as Ctrl-C does."""
    try:
        with terminate_as_interrupt(), library_warnings():
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
