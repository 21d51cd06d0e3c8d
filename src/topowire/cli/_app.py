"""The ``topowire`` app, its error handling and the option toolkit the commands share.

Every error caused by input (bad parameters, files, options) is printed as one line
``error: ...`` on stderr with exit status 2, and no output file is left half written.
Choices come from the library's registries and defaults from its config dataclasses.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from topowire import __version__
from topowire.compiler.arch import TARGETS, Arch
from topowire.compiler.wiring import ORIENTATIONS
from topowire.data.tasks import TASKS
from topowire.errors import TopowireError
from topowire.train.config import TrainConfig
from topowire.train.executors import EXECUTORS

_path = click.Path(path_type=Path)
_TRAIN, _ARCH = TrainConfig(), Arch()
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


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


def _arch_options(default: Arch = _ARCH):
    """The arch options, showing ``default``'s kind (given as None: the caller's config decides)."""
    return _options(
        (("--arch", "kind"), _choice(TARGETS, "Compile target", default.kind)),
        (("--orientation",), {**_choice(ORIENTATIONS, "How edges become connections"), "help":
                              f"How edges become connections: {', '.join(ORIENTATIONS)}. {_WIRING}"}),
        (("--inputs",), {"type": _Roles(), "help": f"Neurons that read the data: all, sources, or K (top-K by "
                                                   f"degree). {_WIRING}"}),
        (("--outputs",), {"type": click.Choice(["all", "sinks"]), "help": "Neurons read out: all or sinks."}),
    )


_executor_options = _options(
    (("--executor",), _choice(EXECUTORS, "Where packs run", "local") | {"default": "local"}),
    (("--address",), {"help": "With --executor ray: the cluster, auto (started with `ray start` here) or "
                              "HOST:PORT (default: a local cluster for this command)."}),
    (("--workers",), {"type": click.IntRange(1), "help": "With --executor ray: packs in flight at once (default: "
                                                          "the cluster's CPUs, or GPUs with --device cuda)."}),
)


def _executor(options: dict, device: str | None):
    """The executor the options name, connected (a Ray cluster is reached before any work)."""
    from topowire.errors import ParameterError
    from topowire.train.executors import get_executor

    name, address, workers = options.pop("executor"), options.pop("address"), options.pop("workers")
    if name != "ray":
        if address is not None or workers is not None:
            raise ParameterError("--address and --workers go with --executor ray")
        return name
    cuda = (device or "").startswith("cuda")
    executor = get_executor("ray", address=address, workers=workers, gpus=1.0 if cuda else 0.0)
    executor.connect()
    return executor


def _given(cls, options: dict, **extra):
    """``cls`` (a config dataclass) from the options that name its fields and were given."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in {**options, **extra}.items() if k in names and v is not None})


def _train_options(train: TrainConfig = _TRAIN):
    """The training options, showing the defaults of ``train`` (the dataclass decides them)."""
    return _options(
        (("--task",), _choice(TASKS, "Task", "reber") | {"default": "reber"}),
        (("--epochs",), _default("epochs", "Passes over the training set.", train, type=int)),
        (("--batch-size",), _default("batch_size", "Shared batch size.", train, type=int)),
        (("--lr",), _default("lr", "Learning rate.", train, type=float)),
        (("--seed",), _default("seed", "Root seed: data, order and every model's init.", train, type=int)),
        (("--n-train",), {"type": int, "help": "Training examples (default: the task's; reber 4000)."}),
        (("--n-test",), {"type": int, "help": "Test examples (default: the task's; reber 400)."}),
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="topowire")
def app() -> None:
    """Compile graph topologies into neural networks and predict how they train."""


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
