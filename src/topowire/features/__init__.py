"""Graph features: a registry of named, documented measures and a parallel table builder.

See :mod:`topowire.features.context` for what graph each feature sees (the undirected
skeleton; the largest component for distances; the ``u < v`` orientation for ``dag``).
"""

from topowire.features import builtin  # noqa: F401  (registers the built-in features)
from topowire.features.context import GraphContext
from topowire.features.registry import GROUPS, REGISTRY, Feature, list_features, register, resolve_names
from topowire.features.table import compute_features, feature_table

__all__ = ["GROUPS", "REGISTRY", "Feature", "GraphContext", "compute_features", "feature_table",
           "list_features", "register", "resolve_names"]
