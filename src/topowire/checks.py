"""Argument checks, in one place (DESIGN §10).

Each check returns the value in its canonical type or raises: :class:`ArgumentTypeError`
(a :class:`TypeError` and a :class:`~topowire.errors.ParameterError`) for a value of the
wrong type, :class:`~topowire.errors.ParameterError` (a :class:`ValueError`) for a value
out of range. Messages name the argument, what was expected and what was given:
``epochs must be an integer >= 1, got epochs = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from topowire.errors import ArgumentTypeError, ParameterError

__all__ = ["integer", "number", "choice", "boolean"]


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
