"""topowire: compile graph topologies into neural networks and predict how they train."""

from topowire.errors import DataError, FileFormatError, NotADAGError, ParameterError, TopowireError
from topowire.topology import (
    Population,
    Recipe,
    Topology,
    generate,
    load_recipe,
    read_graph,
    read_population,
    sample_population,
    write_graph,
    write_population,
)

__version__ = "0.1.0"

#: The compiler, tasks, training and studies, imported on first use (they import torch).
_LAZY = {"Arch": "topowire.compiler", "compile": "topowire.compiler", "make_task": "topowire.data",
         "TrainConfig": "topowire.train", "train_population": "topowire.train", "run_study": "topowire.study",
         "StudyConfig": "topowire.study"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'topowire' has no attribute {name!r}")

__all__ = [
    "__version__", "TopowireError", "ParameterError", "FileFormatError", "NotADAGError",
    "DataError", "Topology", "Population", "Recipe", "generate", "load_recipe",
    "sample_population", "read_population", "write_population", "read_graph", "write_graph", *_LAZY,
]
