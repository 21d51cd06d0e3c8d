"""Topologies, their generators, recipes, populations and file formats."""

from topowire.topology.formats import GRAPH_FORMATS, read_graph, write_graph
from topowire.topology.generators import (
    FAMILIES,
    ba_graph,
    complete_graph,
    er_graph,
    generate,
    gnm_graph,
    mlp_graph,
    regular_graph,
    ring_lattice,
    ws_graph,
)
from topowire.topology.plane import coverage
from topowire.topology.population import (
    Population,
    convert_graphs,
    read_or_draw,
    read_population,
    sample_population,
    write_population,
)
from topowire.topology.recipe import FamilySpec, ParamSpec, Recipe, family_recipe, load_recipe, parse_recipe
from topowire.topology.topology import Topology

__all__ = [
    "Topology", "Population", "Recipe", "FamilySpec", "ParamSpec",
    "FAMILIES", "generate", "er_graph", "gnm_graph", "ws_graph", "ba_graph", "ring_lattice",
    "regular_graph", "complete_graph", "mlp_graph",
    "load_recipe", "parse_recipe", "family_recipe", "convert_graphs",
    "sample_population", "read_population", "read_or_draw", "write_population", "coverage",
    "read_graph", "write_graph", "GRAPH_FORMATS",
]
