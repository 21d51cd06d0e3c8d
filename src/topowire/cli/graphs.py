"""Commands on graphs: generate, features, show, convert (no torch is imported)."""

from __future__ import annotations

import click

from topowire import topology
from topowire._io import check_output, check_table_path, write_table
from topowire.cli import app
from topowire.cli.options import PATH, Checked, fields
from topowire.console import console, print_frame, progress
from topowire.errors import ParameterError
from topowire.features import feature_ranges


@app.command()
@click.argument("recipe", type=PATH, required=False)
@click.option("-o", "--output", type=PATH, required=True, help="Population JSONL to write.")
@click.option("--seed", type=Checked("seed"), help="Seed (default: the recipe's).")
@click.option("--family", type=Checked("family"), help="One family to draw, instead of a RECIPE file.")
@fields(topology.family_recipe, "count", "n", "k", "p", "m", "d", "directed", "sizes")
def generate(recipe, output, seed, family, count, **params) -> None:
    """Sample a population of random graphs from a recipe file or from one --family into JSONL.

    With --family, the options after it give the family's parameters.
    """
    check_output(output, recipe)
    if (recipe is None) == (family is None):
        raise ParameterError("give either a RECIPE file or --family (with its parameters), not both or neither")
    recipe = topology.load_recipe(recipe) if recipe else topology.family_recipe(family, count, **params)
    pop = topology.sample_population(recipe, seed)
    topology.write_population(pop, output)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    console.print(f"wrote {len(pop)} topologies ({len(pop) - len(set(pop.ids))} duplicate(s)) to {output}")


@app.command()
@click.argument("population", type=PATH, required=False)
@click.option("-o", "--output", type=PATH, help="Table to write (.csv or .parquet).")
@click.option("--names", type=Checked("names"), help="Comma-separated features or groups (default: all; see --list).")
@click.option("-j", "--jobs", type=Checked("jobs"), default=-1, help="Processes (-1: all cores, -2: all but one).")
@click.option("--list", "list_", is_flag=True, help="Print the feature registry and exit.")
def features(population, output, names, jobs, list_) -> None:
    """Compute the graph features of every topology into a table."""
    check_output(output, population)
    from topowire.features import feature_table, list_features

    if list_:
        return print_frame(list_features().set_index("name"), "features")
    if population is None or output is None:
        raise ParameterError("features needs a POPULATION file and -o OUTPUT (or --list)")
    check_table_path(output)
    pop = topology.read_population(population)
    with progress() as update:
        df = feature_table(pop, names, n_jobs=jobs, progress=lambda d, t: update("features", d, t))
    write_table(df, output)
    repeated = f" ({len(pop) - len(df)} repeated topologies counted once)" if len(pop) > len(df) else ""
    console.print(f"wrote {df.shape[1]} features of {df.shape[0]} topologies to {output}{repeated}")


@app.command()
@click.argument("population", type=PATH)
@click.option("--id", "id_", type=Checked("id_"), help="Show one topology.")
@click.option("--png", type=PATH, help="Draw the topology (the first, or --id) to a PNG.")
@click.option("--ids", is_flag=True, help="List every topology: its id, family, nodes, edges and parameters.")
def show(population, id_, png, ids) -> None:
    """Summarise a population (or a recipe's draw) and its (C, L) coverage; list or draw its graphs."""
    from topowire.limits import LimitError
    from topowire.report import check_drawable, draw_topology

    check_output(png, population)
    pop = topology.read_or_draw(population)
    topo = pop.by_id(id_) if id_ is not None else pop[0]
    if png is not None:
        check_drawable(topo)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    try:
        print_frame(feature_ranges(pop).T, f"clustering C and path length L drawn; {topology.coverage(pop)}")
    except LimitError as exc:  # a summary of huge graphs still prints; only C and L are skipped
        console.print(f"clustering C and path length L not computed: {exc}")
    if ids:
        print_frame(pop.listing(), f"the {len(pop)} topologies")
    if id_ is not None:
        console.print(f"{topo!r}  params={dict(topo.params)}  seed={topo.seed}  density={topo.density:.4g}")
    if png is not None:
        draw_topology(topo, png)
        console.print(f"drew {topo.id} to {png}")


@app.command()
@click.argument("inputs", type=PATH, nargs=-1, required=True)
@fields(topology.convert_graphs, "output", "id_", "directed")
def convert(inputs, output, id_, directed) -> None:
    """Convert graph files into a population, or one topology of a population into a graph file."""
    check_output(output, *inputs)
    console.print(f"wrote {topology.convert_graphs(inputs, output, id_=id_, directed=directed)} to {output}")
