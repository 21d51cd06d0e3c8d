"""Population recipes: which families to sample, how many graphs, which parameter ranges.

A recipe is TOML::

    [population]              # optional
    name = "quick"
    seed = 0                  # default seed; `topowire generate --seed` overrides it

    [[family]]
    kind = "ws"               # a generator family (see topowire.topology.FAMILIES)
    count = 25                # graphs of this family
    n = [16, 48]              # inclusive integer range
    k = "2*(n//10)"           # an expression of n (and of parameters listed before it)
    p = [0.0, 1.0]            # float range (uniform) -- any float bound makes it one
    connected = true          # a fixed value
    # d = { choices = [2, 4, 6] }   # one of a list
    # stratify = { avg_clustering = 9, avg_path_length = 9 }
    #   keep one graph per occupied cell of a 9 x 9 grid over the (C, L) range of the
    #   `count` graphs drawn (graph2nn's selection): count is then the candidates

Parameter values are one of: a fixed scalar; ``[lo, hi]`` (an inclusive integer range
when both bounds are integers, else a uniform float range); ``{ choices = [...] }``; or a
string expression over ``n`` and earlier parameters using ``+ - * / // % **``,
parentheses, integer/float literals and ``min``, ``max``, ``round``, ``int``. Expressions
are parsed into a syntax tree and evaluated from a whitelist, never executed. List-valued
parameters (``sizes`` of ``mlp``) take a list as their fixed value.
"""

from __future__ import annotations

import ast
import math
import operator
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from topowire import checks, limits
from topowire._io import read_text
from topowire.errors import FileFormatError, ParameterError
from topowire.topology.generators import FAMILIES, check_parameter_names, edge_bound, generate

__all__ = ["ParamSpec", "FamilySpec", "Recipe", "load_recipe", "parse_recipe", "evaluate_expression"]

_LIST_PARAMS = frozenset({"sizes"})


# -- safe expressions --------------------------------------------------------------------
_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _check_power(text: str, base: Any, exponent: Any) -> None:
    """Refuse a power whose result would exceed 1e18 in magnitude (``9**9**9`` would hang)."""
    import math

    try:
        big = abs(exponent) > 64 or (base not in (0, 1, -1) and abs(exponent) * math.log10(abs(base)) > 18)
    except (TypeError, ValueError):
        return  # a type error is reported by the operator itself
    if big:
        raise OverflowError(f"{base!r} ** {exponent!r} is too large (powers are limited to results below 1e18 "
                            "and exponents up to 64)")


#: The longest recipe expression: bounded before parsing, so no expression can exhaust
#: the parser (a chain of 10,000 terms or unary minuses) or nest calls without end.
MAX_EXPRESSION = 200


def _round(x, ndigits=None):
    """``round`` with ``|ndigits| <= 18`` (``round(5, -10**17)`` would compute 10**(10**17))."""
    if ndigits is not None and abs(ndigits) > 18:
        raise ValueError(f"round() takes at most 18 digits, got ndigits = {ndigits}")
    return round(x, ndigits)


_CALLS = {"min": min, "max": max, "round": _round, "int": int}


def _check_expression(text: str) -> ast.Expression:
    if len(text) > MAX_EXPRESSION:
        raise ParameterError(f"expression {text[:40]!r}... has {len(text):,} characters; recipe expressions are "
                             f"at most {MAX_EXPRESSION}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ParameterError(f"cannot parse expression {text!r}") from None
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load,
                               ast.Call, *(_BINOPS), *(_UNARY)))
        if isinstance(node, ast.Constant):
            ok = isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
        if isinstance(node, ast.Call):
            ok = (isinstance(node.func, ast.Name) and node.func.id in _CALLS and not node.keywords)
        if not ok:
            raise ParameterError(
                f"expression {text!r} uses {type(node).__name__}: only numbers, parameter "
                "names, + - * / // % **, parentheses and min/max/round/int are allowed"
            )
    return tree


def evaluate_expression(text: str, env: Mapping[str, Any]) -> int | float:
    """Evaluate a recipe expression such as ``"n//5"`` against sampled parameters.

    Parameters
    ----------
    text : str
        The expression.
    env : mapping
        Parameter values visible to it (``n`` and earlier parameters).

    Raises
    ------
    ParameterError
        On syntax outside the whitelist, an unknown name or an arithmetic error.
    """
    tree = _check_expression(text)

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise ParameterError(
                    f"expression {text!r} names {node.id!r}, which is not a parameter "
                    f"defined before it (known: {', '.join(env) or 'none'})"
                )
            return env[node.id]
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow):
                _check_power(text, left, right)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Call):
            return _CALLS[node.func.id](*(ev(a) for a in node.args))
        raise AssertionError(node)  # pragma: no cover - excluded by _check_expression

    try:
        value = ev(tree)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise ParameterError(f"expression {text!r} failed for {dict(env)}: {exc}") from None
    if isinstance(value, float) and value.is_integer() and "/" not in text.replace("//", ""):
        value = int(value)
    return value


# -- parameter specs ---------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is drawn.

    Attributes
    ----------
    form : {"fixed", "int-range", "float-range", "choice", "expr"}
    value : Any
        The fixed value, ``(lo, hi)``, the tuple of choices, or the expression text.
    """

    form: str
    value: Any

    @classmethod
    def parse(cls, name: str, raw: Any) -> ParamSpec:
        """Parse a TOML value into a spec (see the module docstring for the syntax)."""
        if name in _LIST_PARAMS and isinstance(raw, list):
            return cls("fixed", tuple(raw))
        if isinstance(raw, dict):
            if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
                raise ParameterError(
                    f"{name} = {raw!r}: a table value must be {{ choices = [a, b, ...] }}"
                )
            return cls("choice", tuple(tuple(c) if isinstance(c, list) else c for c in raw["choices"]))
        if isinstance(raw, list):
            if len(raw) != 2 or not all(_is_number(x) for x in raw):
                raise ParameterError(
                    f"{name} = {raw!r}: a range is [lo, hi] with two numbers; "
                    "for a list of options write { choices = [...] }"
                )
            lo, hi = raw
            if lo > hi:
                raise ParameterError(f"{name} = {raw!r}: range has lo > hi")
            if isinstance(lo, int) and isinstance(hi, int):
                return cls("int-range", (lo, hi))
            return cls("float-range", (float(lo), float(hi)))
        if isinstance(raw, str):
            _check_expression(raw)
            return cls("expr", raw)
        if isinstance(raw, (bool, int, float)):
            return cls("fixed", raw)
        raise ParameterError(f"{name} = {raw!r}: unsupported value type {type(raw).__name__}")

    def sample(self, rng: np.random.Generator, env: Mapping[str, Any]) -> Any:
        """Draw one value with ``rng``; expressions see ``env``."""
        if self.form == "fixed":
            return list(self.value) if isinstance(self.value, tuple) else self.value
        if self.form == "int-range":
            return int(rng.integers(self.value[0], self.value[1], endpoint=True))
        if self.form == "float-range":
            return float(rng.uniform(self.value[0], self.value[1]))
        if self.form == "choice":
            c = self.value[int(rng.integers(len(self.value)))]
            return list(c) if isinstance(c, tuple) else c
        return evaluate_expression(self.value, env)

    def to_toml_value(self) -> Any:
        """The recipe value this spec was parsed from."""
        if self.form == "fixed":
            return list(self.value) if isinstance(self.value, tuple) else self.value
        if self.form in ("int-range", "float-range"):
            return list(self.value)
        if self.form == "choice":
            return {"choices": [list(c) if isinstance(c, tuple) else c for c in self.value]}
        return self.value


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class FamilySpec:
    """One ``[[family]]`` entry: a generator kind, a count and parameter specs; with
    ``stratify`` (feature, bins) pairs, the ``count`` graphs drawn are candidates of which
    one per occupied cell of that grid is kept (:mod:`topowire.topology.plane`)."""

    kind: str
    count: int
    params: tuple[tuple[str, ParamSpec], ...]
    stratify: tuple[tuple[str, int], ...] = ()

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw one parameter set, ``n`` first, then the others in recipe order."""
        env: dict[str, Any] = {}
        ordered = sorted(self.params, key=lambda kv: kv[0] != "n")
        for name, spec in ordered:
            env[name] = spec.sample(rng, env)
        return env

    def max_n(self) -> int:
        """The most nodes a graph of this family can have, where the recipe bounds it (else 0):
        ``n`` fixed, a range or a choice (``mlp``: the sum of its fixed ``sizes``)."""
        spec = dict(self.params).get("n")
        if spec is None:
            sizes = dict(self.params).get("sizes")
            return sum(sizes.value) if sizes is not None and sizes.form == "fixed" else 0
        values = {"fixed": lambda: [spec.value], "int-range": lambda: spec.value, "float-range": lambda: spec.value,
                  "choice": lambda: spec.value}.get(spec.form, lambda: [0])()
        return int(max((v for v in values if isinstance(v, (int, float))), default=0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count,
                **{k: s.to_toml_value() for k, s in self.params},
                **({"stratify": dict(self.stratify)} if self.stratify else {})}


@dataclass(frozen=True)
class Recipe:
    """A population recipe: families to sample and a default seed.

    Use :func:`load_recipe` or :func:`parse_recipe` to build one from TOML, and
    :func:`topowire.topology.sample_population` to draw a population from it.
    """

    families: tuple[FamilySpec, ...]
    name: str = "population"
    seed: int = 0

    @property
    def count(self) -> int:
        """Total number of graphs the recipe draws."""
        return sum(f.count for f in self.families)

    def design(self) -> str:
        """The design in words: graphs per family and the span of their node counts, e.g.
        ``75 graphs (er 25, ws 25, ba 25) of 8-24 nodes`` (stratified families: candidates)."""
        kinds = ", ".join(f"{f.kind} {f.count}{' candidates' if f.stratify else ''}" for f in self.families)
        spans = [_span(dict(f.params).get("n")) for f in self.families]
        known = [s for s in spans if s is not None]
        lo, hi = (min(s[0] for s in known), max(s[1] for s in known)) if known else (None, None)
        nodes = "" if lo is None else f" of {lo} nodes" if lo == hi else f" of {lo}-{hi} nodes"
        return f"{'up to ' if any(f.stratify for f in self.families) else ''}{self.count} graphs ({kinds}){nodes}"

    def to_dict(self) -> dict[str, Any]:
        """A dict that :func:`parse_recipe` turns back into an equal recipe."""
        return {"population": {"name": self.name, "seed": self.seed},
                "family": [f.to_dict() for f in self.families]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        return parse_recipe(data)


def _span(spec: ParamSpec | None) -> tuple[int, int] | None:
    """The least and most a node-count spec can draw (None for an expression or no ``n``)."""
    if spec is None or spec.form == "expr":
        return None
    values = [spec.value] if spec.form == "fixed" else list(spec.value)
    numbers = [int(v) for v in values if _is_number(v)]
    return (min(numbers), max(numbers)) if numbers else None


def parse_recipe(data: Mapping[str, Any]) -> Recipe:
    """Validate a parsed TOML document and build a :class:`Recipe`.

    Raises
    ------
    ParameterError
        Unknown keys or families, missing parameters, bad ranges or counts.
    """
    unknown = set(data) - {"population", "family"}
    if unknown:
        raise ParameterError(
            f"unknown recipe section(s) {', '.join(sorted(unknown))}: expected [population] and [[family]]"
        )
    head = data.get("population", {})
    if not isinstance(head, dict):
        raise ParameterError("[population] must be a table")
    bad = set(head) - {"name", "seed", "n", "edges"}
    if bad:
        raise ParameterError(f"unknown key(s) in [population]: {', '.join(sorted(bad))}; expected name, seed, n, "
                             "edges")
    name = head.get("name", "population")
    seed = head.get("seed", 0)
    if not isinstance(name, str):
        raise ParameterError(f"population name must be a string, got {name!r}")
    checks.integer("population seed", seed, 0)
    fams = data.get("family")
    if not isinstance(fams, list) or not fams:
        raise ParameterError("a recipe needs at least one [[family]] entry")
    families = []
    for i, fam in enumerate(fams, 1):
        if not isinstance(fam, dict):
            raise ParameterError(f"family {i}: must be a table")
        families.append(_parse_family(i, _held_size(i, fam, head) if "edges" in head or "n" in head else fam))
    limits.check("graphs", sum(f.count for f in families), "the recipe's count")
    limits.check("total_nodes", sum(f.count * f.max_n() for f in families), "the recipe's nodes at most")
    return Recipe(tuple(families), name=name, seed=seed)


#: The families whose edge count can be set exactly, and how: the parameter that sets it
#: for n nodes and E edges.
EDGE_PARAMETERS = {"gnm": ("m", lambda n, e: e), "wsflex": ("k", lambda n, e: 2 * e / n),
                   "regular": ("d", lambda n, e: 2 * e // n)}


def _held_size(i: int, fam: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, Any]:
    """A family of a recipe whose ``[population]`` holds the size fixed (``n`` and, with
    ``edges``, the edge count): its n and its edge parameter set to them."""
    kind, fam = fam.get("kind"), dict(fam)
    if "n" not in head:
        raise ParameterError("[population] edges = ... needs n = ... beside it: an edge count of graphs of one size")
    n = checks.integer("[population] n", head["n"], 2)
    if "n" in fam and fam["n"] != n:
        raise ParameterError(f"family {i} ({kind}): n = {fam['n']!r} but [population] holds n = {n}")
    fam["n"] = n
    if "edges" in head:
        edges = checks.integer("[population] edges", head["edges"], 1, n * (n - 1) // 2, what=f" for n = {n}")
        if kind not in EDGE_PARAMETERS:
            raise ParameterError(f"family {i} ({kind}) cannot hold the edge count fixed: with [population] edges, "
                                 f"use {', '.join(EDGE_PARAMETERS)}")
        name, value = EDGE_PARAMETERS[kind]
        if kind == "regular" and (2 * edges) % n:
            raise ParameterError(f"family {i} (regular): {edges} edges on {n} nodes is no regular graph")
        if name in fam:
            raise ParameterError(f"family {i} ({kind}): {name} is set by [population] edges = {edges}")
        fam[name] = value(n, edges)
    return fam


def _parse_family(i: int, fam: Mapping[str, Any]) -> FamilySpec:
    kind = fam.get("kind")
    if kind not in FAMILIES:
        raise ParameterError(
            f"family {i}: unknown kind {kind!r}: expected one of {', '.join(sorted(FAMILIES))}"
        )
    count = fam.get("count", 1)
    checks.integer(f"family {i} ({kind}): count", count, 1)
    params = {k: v for k, v in fam.items() if k not in ("kind", "count", "stratify")}
    check_parameter_names(kind, params, prefix=f"family {i} ({kind}): ", noun="key(s)",
                          also=("kind", "count", "stratify"))
    specs = []
    for k, v in params.items():
        try:
            specs.append((k, ParamSpec.parse(k, v)))
        except ParameterError as exc:
            raise ParameterError(f"family {i} ({kind}): {exc}") from None
    return FamilySpec(kind, count, tuple(specs), _parse_stratify(f"family {i} ({kind}): stratify", fam))


def _parse_stratify(where: str, fam: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """A family's ``stratify = { feature = bins, ... }`` as (feature, bins) pairs."""
    from topowire.topology.plane import STRATA

    raw = fam.get("stratify", {})
    if not isinstance(raw, dict) or ("stratify" in fam and not raw):
        raise ParameterError(f"{where} must be a table of features and bin counts, e.g. "
                             "{ avg_clustering = 9, avg_path_length = 9 }")
    unknown = sorted(set(raw) - set(STRATA))
    if unknown:
        raise ParameterError(f"{where}: unknown feature(s) {', '.join(unknown)}: expected {', '.join(STRATA)}")
    return tuple((name, checks.integer(f"{where}.{name}", raw[name], 1, 1000)) for name in STRATA if name in raw)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a TOML recipe file.

    Raises
    ------
    FileFormatError
        The file is missing, empty or not valid TOML.
    ParameterError
        The TOML is valid but the recipe is not.
    """
    path = Path(path)
    text = read_text(path, "recipe file", comments=True)
    if not text.strip():
        raise FileFormatError(f"recipe file {str(path)!r} is empty")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"recipe file {str(path)!r} is not valid TOML: {exc}") from None
    try:
        return parse_recipe(data)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None


def sample_family_graph(spec: FamilySpec, index: int, child: np.random.SeedSequence, totals: list[int] | None = None):
    """Draw one graph of a family from its own child seed (parameters, then the graph);
    ``totals`` (nodes and edges drawn so far) grows by the graph's bounds, checked against
    the population's limits before it is drawn."""
    rng = np.random.default_rng(child)
    params = spec.sample_params(rng)
    graph_seed = int(rng.integers(0, 2**63 - 1))
    if totals is not None and isinstance(params.get("n"), int):
        totals[0] += params["n"]
        totals[1] += edge_bound(spec.kind, params)
        limits.check("total_nodes", totals[0], "the population's nodes")
        limits.check("total_edges", totals[1], "the population's edges (bounded from its parameters)")
    try:
        return generate(spec.kind, seed=graph_seed, **params)
    except ParameterError as exc:
        raise ParameterError(f"family {index} ({spec.kind}) with {params}: {exc}") from None


def family_recipe(family: str, count: int = 1, *, n: int | None = None, k: float | None = None,
                  p: float | None = None, m: int | None = None, d: int | None = None, directed: bool | None = None,
                  sizes: str | Sequence[int] | None = None) -> Recipe:
    """A recipe of one family: the ``generate --family`` shortcut.

    Parameters
    ----------
    family : str
        The family to draw, instead of a recipe file.
    count : int
        Graphs to draw.
    n : int, optional
        Nodes.
    k : float, optional
        WS / ring degree (an integer), or the real mean degree of WS-flex.
    p : float, optional
        ER edge / WS rewiring probability.
    m : int, optional
        BA edges per node / G(n,m) edges.
    d : int, optional
        Degree of a regular graph.
    directed : bool, optional
        ER / G(n,m) direction.
    sizes : str or list of int, optional
        MLP layer widths, e.g. ``4,8,2``.
    """
    if k is not None and float(k).is_integer():
        k = int(k)
    params = {"n": n, "k": k, "p": p, "m": m, "d": d, "directed": directed, "sizes": sizes}
    fam = {"kind": family, "count": count, **{name: v for name, v in params.items() if v is not None}}
    if isinstance(fam.get("sizes"), str):
        try:
            fam["sizes"] = [int(s) for s in fam["sizes"].split(",")]
        except ValueError:
            raise ParameterError(f"--sizes must be comma-separated integers, got {params['sizes']!r}") from None
    return parse_recipe({"population": {"name": family}, "family": [fam]})
