"""Argument checks, in one place (DESIGN §10).

Each check returns the value in its canonical type or raises: :class:`ArgumentTypeError`
(a :class:`TypeError` and a :class:`~topowire.errors.ParameterError`) for a value of the
wrong type, :class:`~topowire.errors.ParameterError` (a :class:`ValueError`) for a value
out of range. Messages name the argument, what was expected and what was given:
``epochs must be an integer >= 1, got epochs = 0``.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from topowire.errors import ArgumentTypeError, ParameterError

__all__ = ["integer", "number", "choice", "boolean", "Domain", "DOMAINS", "declare", "domain", "check", "validate"]


def _range_text(name: str, lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    """`` >= 1``, `` with 0 <= p <= 1``, `` with 0 < lam <= 1`` ..."""
    def fmt(v):
        return f"{v:g}" if isinstance(v, float) else str(v)
    if lo is not None and hi is not None:
        return f" with {fmt(lo)} {'<' if lo_open else '<='} {name} {'<' if hi_open else '<='} {fmt(hi)}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {fmt(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {fmt(hi)}"
    return ""


def integer(name: str, value: Any, lo: int | None = None, hi: int | None = None, *,
            none: bool = False, even: bool = False, what: str = "") -> int | None:
    """``value`` as an int in ``[lo, hi]`` (either bound optional).

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : Any
        The value to check; bools are not integers.
    lo, hi : int, optional
        Inclusive bounds.
    none : bool, default False
        Accept (and return) None.
    even : bool, default False
        Also require an even value.
    what : str, optional
        Appended to the expectation, e.g. ``" (the smallest model's state size)"``.
    """
    if value is None and none:
        return None
    kind = "an even integer" if even else "an integer"
    expected = f"{kind}{_range_text(name, lo, hi)}{what}" + (" or None" if none else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be {expected}, got {name} = {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi) or (even and value % 2):
        raise ParameterError(f"{name} must be {expected}, got {name} = {value!r}")
    return value


def number(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False, none: bool = False, what: str = "") -> float | None:
    """``value`` as a finite float in the interval given by ``lo``/``hi`` (open or closed ends).

    Infinity and NaN are always refused; ``none`` accepts None.
    """
    if value is None and none:
        return None
    expected = f"a finite number{_range_text(name, lo, hi, lo_open, hi_open)}{what}" + (" or None" if none else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{name} must be {expected}, got {name} = {value!r}")
    value = float(value)
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and (value >= hi if hi_open else value > hi)
    if not math.isfinite(value) or below or above:
        raise ParameterError(f"{name} must be {expected}, got {name} = {value!r}")
    return value


def choice(name: str, value: Any, options: Iterable[Any], *, noun: str = "") -> Any:
    """``value`` if it is one of ``options``, else ParameterError listing them."""
    options = list(options)
    if value not in options:
        label = f"unknown {noun} {value!r}" if noun else f"{name} must be one of {', '.join(map(str, options))}"
        tail = f": expected one of {', '.join(map(str, options))}" if noun else f", got {value!r}"
        raise ParameterError(label + tail)
    return value


def boolean(name: str, value: Any) -> bool:
    """``value`` as a bool (numpy bools included); anything else is a type error."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be true or false, got {name} = {value!r}")
    return bool(value)


# -- option domains ----------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """What values one option (a config field, a function argument, a command-line flag) takes.

    Declared once: a shared option in :data:`DOMAINS` under its name, an option whose
    values are a registry where the registry lives (:func:`declare`), a config field of a
    plug-in in its field's ``metadata["domain"]``. The config dataclasses check their fields
    with it (:func:`validate`) and the command line parses its flags with it, so no option
    can be added unchecked (a test walks both).

    Attributes
    ----------
    form : {"int", "float", "choice", "bool", "str", "path"}
        The value's type. ``int`` and ``float`` are bounded by ``lo``/``hi`` (floats are
        always finite); ``choice`` is one of ``choices``; an ``int`` with ``choices`` also
        takes one of them (``inputs``: ``all``, ``sources`` or a count).
    lo, hi : number, optional
        Bounds (inclusive unless ``lo_open``/``hi_open``). ``hi`` may name a size limit of
        :mod:`topowire.limits` (``"nodes"``, ``"examples"``, ...): its current value, raised
        by its environment variable.
    none : bool
        Unset (None) is allowed: the library decides.
    choices : tuple, mapping or callable
        Allowed values: a tuple, a registry (a mapping: its keys, read when needed, so
        plug-ins registered later count) or a function returning them.
    pattern : str, optional
        ``str`` only: a regular expression the whole value matches.
    what : str
        Appended to the expectation in messages.
    noun : str, optional
        What a choice is called in messages (``unknown format 'x'``); default: the name.
    """

    form: str
    lo: float | None = None
    hi: float | str | None = None
    lo_open: bool = False
    hi_open: bool = False
    none: bool = False
    choices: tuple | Mapping | Callable[[], Iterable] | None = None
    pattern: str | None = None
    what: str = ""
    noun: str | None = None

    def options(self) -> list:
        """The allowed choices (a registry's keys as they are now)."""
        return list(self.choices() if callable(self.choices) else self.choices or ())

    def check(self, name: str, value: Any) -> Any:
        """``value`` in its canonical type, or ParameterError / ArgumentTypeError naming ``name``."""
        from topowire import limits

        if value is None and self.none:
            return None
        if self.choices is not None and (self.form == "choice" or value in self.options()):
            return choice(name, value, self.options(), noun=self.noun or name.replace("_", " "))
        if self.form == "int":
            hi = limits.limit(self.hi) if isinstance(self.hi, str) else self.hi
            what = self.what + (f" or one of {', '.join(map(str, self.options()))}" if self.choices else "")
            value = integer(name, value, self.lo, None if isinstance(self.hi, str) else hi, what=what)
            if isinstance(self.hi, str):
                limits.check(self.hi, value, name)
            return value
        if self.form == "float":
            return number(name, value, self.lo, self.hi, lo_open=self.lo_open, hi_open=self.hi_open, what=self.what)
        if self.form == "bool":
            return boolean(name, value)
        if not isinstance(value, (str, os.PathLike)):
            raise ArgumentTypeError(f"{name} must be a {'path' if self.form == 'path' else 'string'}, "
                                    f"got {name} = {value!r}")
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            raise ParameterError(f"{name} must be {self.what or 'of the form ' + self.pattern}, got {name} = {value!r}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """A command-line value: ``text`` converted to the domain's type, then checked."""
        if self.form in ("int", "float") and text not in self.options():
            try:
                value = int(text) if self.form == "int" else float(text)
            except ValueError:
                expected = "an integer" if self.form == "int" else "a number"
                raise ParameterError(f"{name} must be {expected}, got {text!r}") from None
            return self.check(name, value)
        return self.check(name, text)


def _i(lo=None, hi=None, **kw) -> Domain:
    return Domain("int", lo, hi, **kw)


def _f(lo=None, hi=None, **kw) -> Domain:
    return Domain("float", lo, hi, **kw)


#: The largest seed: an int64, so that it fits the store and torch's generators.
SEED_MAX = 2**63 - 1
_SEED = _i(0, SEED_MAX)

#: Every option's domain, by name (see :class:`Domain`). Config dataclasses and command-line
#: flags of the same name share it; a field or flag missing here is an error (tests).
DOMAINS: dict[str, Domain] = {
    # seeds and sizes of work
    "seed": _SEED, "train_seed": _SEED,
    "epochs": _i(1, 10**6), "retrain": _i(0, 10**6), "batch_size": _i(1, 2**20),
    "replicates": _i(1, "models"), "n_estimators": _i(1, "trees"),
    "n_train": _i(1, "examples", none=True), "n_test": _i(1, "examples", none=True),
    "memory_mb": _i(1, "memory", none=True), "chunk_size": _i(1, 10**6, none=True),
    "sub_pack": _i(0, 10**6, none=True, what=" (models per sub-pack; 0: the whole pack)"),
    "threads": _i(1, 1024, none=True, what=" (torch threads)"), "workers": _i(1, 4096, none=True),
    "jobs": _i(-1024, 1024, none=True, what=" (worker processes; -1: every core, -2: all but one, as joblib)"),
    "count": _i(1, "graphs"), "batch": _i(1, 2**20), "seq_len": _i(1, 10**6),
    # training
    "lr": _f(0, 10, lo_open=True), "momentum": _f(0, 1, hi_open=True), "clip": _f(0, 1e6, none=True),
    "diverge_loss": _f(0, 1e12, lo_open=True), "stability": _f(0, 1, lo_open=True, none=True,
                                                             what=" (the bound on ||W_hh||_2)"),
    "nesterov": Domain("bool"), "weight_decay": _f(0, 1), "standardize": Domain("bool"), "augment": Domain("bool"),
    "bucket": Domain("bool"),
    "device": Domain("str", pattern=r"auto|cpu|cuda(:\d{1,3})?", what="'auto', 'cpu' or 'cuda[:i]'"),
    "bf16": Domain("bool"), "fused": Domain("bool"),
    "address": Domain("str", none=True),
    # the arch
    "d_in": _i(1, 2**20), "d_out": _i(1, 2**20),
    "inputs": _i(1, "nodes", none=True, choices=("all", "sources")),
    "iterations": _i(1, 10**4, none=True),
    "recurrence": Domain("choice", choices=("dense", "none")),
    "input_width": Domain("choice", choices=("fixed", "sources")),
    "width": _i(1, 2**16), "depth": _i(1, 64), "batchnorm": Domain("bool"),
    "match": Domain("choice", choices=("flops", "params", "none")),
    "r": _f(-10, 10, what=" (the radius of R)"), "phi": _f(-2 * math.pi, 2 * math.pi, what=" (radians)"),
    "gamma": _f(0, 10), "r_spread": _f(0, 10),
    # the task
    "data_dir": Domain("path", none=True), "thesis_csv": Domain("path", none=True),
    # graphs
    "n": _i(2, "nodes", none=True), "k": _f(0, 1e6, none=True, what=" (a degree: an integer but for wsflex)"),
    "m": _i(0, "nodes", none=True),
    "d": _i(0, "nodes", none=True), "p": _f(0, 1, none=True), "directed": Domain("bool"),
    "sizes": Domain("str", none=True, pattern=r"\s*\d+(\s*,\s*\d+)+\s*", what="comma-separated layer sizes"),
    "id_": Domain("str", none=True),
    # pruning
    "rate": _f(0, 1, what=" (a fraction)"), "on": Domain("choice", choices=("ih", "hh", "both")),
    "scope": Domain("choice", choices=("global", "layer")),
    # predictors
    "outcome": Domain("str"), "columns": Domain("str", none=True), "group": Domain("str", none=True),
    "size": Domain("str", none=True), "dynamics": Domain("bool"),
    "export_onnx": Domain("bool"),
    "n_next": _i(1, "models", what=" (topologies to suggest)"), "explore": _f(0, 100),
    "budget": _i(1, "models", what=" (topologies to train)"),
    # commands
    "fmt": Domain("choice", choices=("onnx", "torchscript"), noun="format"), "names": Domain("str", none=True),
    "output": Domain("path", none=True), "topology_out": Domain("path", none=True),
    "run_id": Domain("str", none=True, pattern=r"[0-9a-f]{16}", what="a run id (16 hex digits)"),
}


def declare(name: str, domain_: Domain) -> Domain:
    """Declare the domain of the option ``name`` where its registry lives (``executor`` in
    :mod:`topowire.train.executors`, ``task`` beside :data:`~topowire.data.TASKS`, ...): this
    module imports no registry. Declaring a name twice with another domain is an error."""
    if DOMAINS.get(name, domain_) != domain_:
        raise ValueError(f"option {name!r} is declared twice, differently")
    DOMAINS[name] = domain_
    return domain_


def domain(name: str, owner: type | None = None) -> Domain:
    """The declared domain of the option ``name``: its field's ``metadata["domain"]`` in the
    dataclass ``owner`` (a plug-in declares its own options so), else :data:`DOMAINS`.

    Raises
    ------
    ParameterError
        The option declares no domain (one line naming it and where to declare it).
    """
    import dataclasses

    if owner is not None and dataclasses.is_dataclass(owner):
        declared = {f.name: f.metadata.get("domain") for f in dataclasses.fields(owner)}
        if declared.get(name) is not None:
            return declared[name]
    if name in DOMAINS:
        return DOMAINS[name]
    where = f" of {owner.__module__}.{owner.__qualname__}" if owner is not None else ""
    raise ParameterError(f"option {name!r}{where} declares no domain: give its field "
                         f"metadata={{'domain': topowire.checks.Domain(...)}}")


def check(name: str, value: Any, owner: type | None = None) -> Any:
    """``value`` checked against the domain of the option ``name`` (see :func:`domain`)."""
    return domain(name, owner).check(name, value)


def validate(config: Any, skip: Iterable[str] = ()) -> None:
    """Check every field of a frozen config dataclass against its domain, in place (values
    become their canonical types). Fields named in ``skip`` are checked by the caller."""
    import dataclasses

    for f in dataclasses.fields(config):
        if f.name not in skip:
            object.__setattr__(config, f.name, check(f.name, getattr(config, f.name), type(config)))


def click_type(name: str, owner: type | None = None):
    """The command-line type of the option ``name`` (of the dataclass ``owner``, if given): its
    text parsed and checked by its domain, a bad value reported by click as one line naming
    the flag (exit status 2). An option that declares no domain is refused when given, so
    one plug-in's undeclared option breaks no other command."""
    import click

    from topowire.errors import TopowireError

    class Checked(click.ParamType):
        def __init__(self) -> None:
            try:
                self.domain, self.undeclared = domain(name, owner), None
            except ParameterError as exc:
                self.domain, self.undeclared = Domain("str"), str(exc)
            self.name = self.domain.form

        def convert(self, value, param, ctx):
            if self.undeclared:
                self.fail(self.undeclared, param, ctx)
            try:
                value = self.domain.parse(param.name if param else name, value) if isinstance(value, str) else value
            except TopowireError as exc:
                self.fail(str(exc), param, ctx)
            return pathlib.Path(value) if self.domain.form == "path" and value is not None else value

        def get_metavar(self, param, ctx=None):
            if self.domain.choices is not None:
                extra = ["INTEGER"] if self.name == "int" else []
                return "[" + "|".join([*map(str, self.domain.options()), *extra]) + "]"
            return {"int": "INTEGER", "float": "FLOAT", "path": "PATH"}.get(self.name, "TEXT")

    return Checked()
