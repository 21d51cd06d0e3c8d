"""The feature registry: named, documented graph features grouped by kind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from topowire.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from topowire.features.context import GraphContext

__all__ = ["Feature", "GROUPS", "REGISTRY", "register", "resolve_names", "list_features"]

GROUPS = ("size", "degree", "components", "distance", "centrality", "clustering", "spectral",
          "community", "dag")


@dataclass(frozen=True)
class Feature:
    """One graph feature.

    Attributes
    ----------
    name : str
        Column name in feature tables.
    group : str
        One of :data:`GROUPS`.
    doc : str
        One line: what it measures and its normalisation.
    fn : callable
        ``fn(ctx: GraphContext) -> float``.
    """

    name: str
    group: str
    doc: str
    fn: Callable[[GraphContext], float]


#: Every registered feature by name, in registration order.
REGISTRY: dict[str, Feature] = {}


def register(name: str, group: str, doc: str) -> Callable[[Callable], Callable]:
    """Decorator that adds ``fn(ctx) -> float`` to :data:`REGISTRY`."""
    if group not in GROUPS:
        raise ValueError(f"unknown feature group {group!r}")

    def deco(fn: Callable[[GraphContext], float]) -> Callable[[GraphContext], float]:
        if name in REGISTRY:
            raise ValueError(f"feature {name!r} is registered twice")
        REGISTRY[name] = Feature(name, group, doc, fn)
        return fn

    return deco


def resolve_names(names: Sequence[str] | str | None) -> list[str]:
    """Expand feature names and group names (``"centrality"``) into feature names.

    Raises
    ------
    ParameterError
        A name that is neither a feature nor a group.
    """
    import topowire.features.builtin  # noqa: F401  (registers the built-in features)

    if names is None:
        return list(REGISTRY)
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    out: list[str] = []
    for name in names:
        if name in REGISTRY:
            out.append(name)
        elif name in GROUPS:
            out.extend(f.name for f in REGISTRY.values() if f.group == name)
        else:
            raise ParameterError(
                f"unknown feature {name!r}: expected a feature name or a group "
                f"({', '.join(GROUPS)}); `topowire features --list` shows them all"
            )
    return list(dict.fromkeys(out))


def list_features() -> pd.DataFrame:
    """The registry as a table (name, group, doc)."""
    import pandas as pd

    resolve_names(None)
    return pd.DataFrame([(f.name, f.group, f.doc) for f in REGISTRY.values()],
                        columns=["name", "group", "doc"])
