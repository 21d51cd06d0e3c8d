"""Features: a registry of named, documented measures of a graph (or of the model compiled
from it: ``params``, ``dynamics``) and a parallel table builder.

See :mod:`topowire.features.context` for what graph each feature sees (the undirected
skeleton; the largest component for distances; the ``u < v`` orientation for ``dag``).
"""

from topowire.features import builtin  # noqa: F401  (registers the built-in graph features)
from topowire.features.context import GraphContext
from topowire.features.registry import (
    GROUPS,
    MODEL_GROUPS,
    MODEL_REGISTRY,
    REGISTRY,
    Feature,
    ModelGroup,
    list_features,
    register,
    resolve_names,
)
from topowire.features.table import compute_features, feature_ranges, feature_table

__all__ = ["GROUPS", "MODEL_GROUPS", "REGISTRY", "MODEL_REGISTRY", "Feature", "ModelGroup", "GraphContext",
           "compute_features", "feature_table", "feature_ranges",
           "list_features", "register", "resolve_names"]
