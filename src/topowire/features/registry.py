"""The feature registry: named, documented features grouped by kind.

Graph features (:data:`REGISTRY`, groups :data:`GROUPS`) are functions of the graph alone.
Model features (:data:`MODEL_REGISTRY`, groups :data:`MODEL_GROUPS`) are measured on the
network the trainer builds from a graph -- its parameter count, its dynamics at
initialisation -- so they need the arch (and some the task and the training seed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from topowire.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from topowire.features.context import GraphContext

__all__ = ["Feature", "ModelGroup", "GROUPS", "MODEL_GROUPS", "REGISTRY", "MODEL_REGISTRY", "register",
           "register_model_group", "resolve_names", "list_features"]

GROUPS = ("size", "degree", "components", "distance", "centrality", "clustering", "spectral",
          "community", "dag")
MODEL_GROUPS = ("params", "flops", "dynamics", "init")


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


@dataclass(frozen=True)
class ModelGroup:
    """A group of model features, computed together for a population.

    Attributes
    ----------
    group : str
        One of :data:`MODEL_GROUPS`.
    docs : dict of str to str
        Each feature's name and one-line description, in column order.
    table : callable
        ``table(topologies, arch, task, seed, progress) -> DataFrame`` indexed by topology
        id, one column per feature, for the models the trainer draws (replicate 0 under
        the training seed ``seed``).
    needs_task : bool
        Whether ``table`` needs the task (to draw the inputs the model runs on).
    """

    group: str
    docs: dict[str, str]
    table: Callable[..., pd.DataFrame]
    needs_task: bool = False


#: Modules that register model feature groups when imported (the built-in ``params``,
#: ``dynamics`` and ``init`` live beside the study, above the compiler and the trainer).
MODEL_FEATURE_MODULES = ["topowire.model_features"]

#: Every registered graph feature by name, in registration order.
REGISTRY: dict[str, Feature] = {}
#: Every model feature group by group name.
MODEL_REGISTRY: dict[str, ModelGroup] = {}


def register_model_group(group: ModelGroup) -> None:
    """Add a group of model features to :data:`MODEL_REGISTRY`."""
    if group.group not in MODEL_GROUPS or group.group in MODEL_REGISTRY:
        raise ValueError(f"model feature group {group.group!r} is unknown or registered twice")
    MODEL_REGISTRY[group.group] = group


def model_feature_group(name: str) -> str | None:
    """The model group of a feature name, or None for a graph feature."""
    return next((g.group for g in MODEL_REGISTRY.values() if name in g.docs), None)


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
    """Expand feature names and group names (``"centrality"``, ``"dynamics"``) into feature names.

    ``None`` means every graph feature. Raises
    ------
    ParameterError
        A name that is neither a feature nor a group.
    """
    import importlib

    for module in MODEL_FEATURE_MODULES:  # above the features (they build models): imported by name
        importlib.import_module(module)

    if names is None:
        return list(REGISTRY)
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    out: list[str] = []
    for name in names:
        if name in REGISTRY or model_feature_group(name):
            out.append(name)
        elif name in GROUPS:
            out.extend(f.name for f in REGISTRY.values() if f.group == name)
        elif name in MODEL_REGISTRY:
            out.extend(MODEL_REGISTRY[name].docs)
        else:
            raise ParameterError(
                f"unknown feature {name!r}: expected a feature name or a group "
                f"({', '.join(GROUPS + MODEL_GROUPS)}); `topowire features --list` shows them all"
            )
    return list(dict.fromkeys(out))


def list_features() -> pd.DataFrame:
    """Both registries as a table (name, group, needs, doc); ``needs`` is what a feature is
    computed from: the graph, or the model (arch) and its inputs (task)."""
    import pandas as pd

    resolve_names(None)
    rows = [(f.name, f.group, "graph", f.doc) for f in REGISTRY.values()]
    rows += [(name, g.group, "arch, task" if g.needs_task else "arch", doc)
             for g in MODEL_REGISTRY.values() for name, doc in g.docs.items()]
    return pd.DataFrame(rows, columns=["name", "group", "needs", "doc"])
