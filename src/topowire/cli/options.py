"""The options of the command line: each a parameter of the library function or config
dataclass it feeds, with its name, type, default and help taken from its signature and
numpydoc ``Parameters`` (:func:`fields`), and its values checked by its declared domain
(:data:`topowire.checks.DOMAINS`); choices come from the library's registries."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import click

from topowire import checks

Checked = checks.click_type
PATH = click.Path(path_type=Path)
FLAGS = {"kind": ("--kind", "--arch"), "outcome": ("--outcome", "--target"), "r": "--radius", "n_estimators": "--trees",
         "topology_out": "--topology", "size": "--size-columns", "id_": "--id", "directed": "--directed/--undirected",
         "output": ("-o", "--output"), "n_next": ("-k", "--next")}  # --arch, --target: the older spellings


def param_help(source) -> dict[str, str]:
    """Each parameter's description in the numpydoc ``Parameters`` of ``source``, as plain text."""
    section = inspect.cleandoc(source.__doc__).partition("Parameters\n----------\n")[2].partition("\n\n")[0]
    helps = {}
    for entry in re.split(r"\n(?=\S)", section):
        head, _, body = entry.partition("\n")
        text = re.sub(r":\w+:`~?([\w.]+\.)?([^`]+)`|``([^`]+)``", lambda m: m[2] or m[3], " ".join(body.split()))
        helps.update(dict.fromkeys(re.findall(r"\w+", head.partition(" : ")[0]), re.sub(r" \(see [^)]*\)", "", text)))
    return helps


def fields(source, *names: str, unset: str = ""):
    """Options for the parameters ``names`` of ``source``: a library function or class, or a
    config dataclass instance (its values are the defaults). Type, default and help come
    from its signature and numpydoc; a parameter whose default is None stays unset unless
    given, so the library decides it. With ``unset`` (a note for the help) every one stays
    unset unless given, its default only shown."""
    fn = source if callable(source) else type(source)
    params, helps = inspect.signature(fn).parameters, param_help(fn)

    def decorate(command):
        for name in reversed(names):
            p = params[name]
            default = None if p.default in (None, p.empty) else getattr(source, name, p.default)
            note = f" {unset}" + (f" [default: {default}]" if default is not None else "") if unset else ""
            kw = {"help": helps[name] + _registry_help(name) + note, "default": None if unset else default,
                  "required": p.default is p.empty}
            if str(p.annotation).startswith("bool"):
                kw["is_flag"] = True
            else:
                kw.update(show_default=default is not None, type=Checked(name, fn))  # fn: a config's own domains
            flags = FLAGS.get(name, "--" + name.replace("_", "-"))
            command = click.option(*(flags if isinstance(flags, tuple) else (flags,)), name, **kw)(command)
        return command
    return decorate


def _registry_help(name: str) -> str:
    """Each choice of ``--kind`` from the target registry (plug-ins included); other options import nothing."""
    if name == "kind":
        from topowire.compiler.targets import kinds_help
        return kinds_help()
    return ""


def target_options(command):
    """Every option of every target, unset unless given (the kind's target takes it or refuses it)."""
    from topowire.compiler.targets import option_fields

    for name, (cls, kinds) in reversed(option_fields().items()):  # the class, not an instance: nothing checked yet
        command = fields(cls, name, unset=f"({', '.join(kinds)} only)")(command)
    return command


def task_option_docs() -> dict[str, str]:
    """Every task's own options (:attr:`topowire.data.TaskSpec.options`) and their meaning."""
    from topowire.data.tasks import TASKS

    return {name: doc for spec in TASKS.values() for name, doc in spec.options.items()}


def task_options(command):
    """Every task's own options (a path each), unset unless given (the task refuses another's)."""
    for name, doc in reversed(task_option_docs().items()):
        command = click.option(f"--{name.replace('_', '-')}", name, type=Checked(name), help=f"{doc}.")(command)
    return command


def arch_of(options: dict, base=None):
    """The arch the options name: ``--kind`` and the wiring, d_in/d_out, the target's options
    (without ``--kind``, ``base`` with the options given)."""
    from topowire.compiler.arch import SHARED, Arch
    from topowire.compiler.targets import option_fields

    given_ = {k: v for k, v in options.items() if k in {*SHARED, *option_fields()} and v is not None}
    return base.replace(**given_) if base is not None and "kind" not in given_ else Arch(**given_)


def given(cls, options: dict, make=None):
    """``cls`` (a config dataclass, or ``make``) from the options that name its fields and were given."""
    return (make or cls)(**{f.name: options[f.name] for f in dataclasses.fields(cls)
                            if options.get(f.name) is not None})


WIRING, EXECUTOR = ("orientation", "inputs", "outputs"), ("executor", "address", "workers", "threads")
RUN = click.option("--run", "run_id", type=Checked("run_id"), help="Run id (when the database holds several).")
DB = click.option("--db", type=PATH, required=True, help="Results database of a training run.")
