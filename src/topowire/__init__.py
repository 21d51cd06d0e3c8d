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

__all__ = [
    "__version__", "TopowireError", "ParameterError", "FileFormatError", "NotADAGError",
    "DataError", "Topology", "Population", "Recipe", "generate", "load_recipe",
    "sample_population", "read_population", "write_population", "read_graph", "write_graph",
]
