"""Commands on graphs: generate, features, show, convert."""

from __future__ import annotations

import click

from topowire._io import check_output
from topowire.cli._app import _choice, _path, app
from topowire.console import console, print_frame, progress
from topowire.errors import ParameterError
from topowire.topology.generators import FAMILIES


@app.command()
@click.argument("recipe", type=_path, required=False)
@click.option("-o", "--output", type=_path, required=True, help="Population JSONL to write.")
@click.option("--seed", type=int, help="Seed (default: the recipe's).")
@click.option("--family", **_choice(FAMILIES, "One-family shortcut instead of a recipe"))
@click.option("--count", type=int, default=1, show_default=True, help="Graphs to draw (with --family).")
@click.option("--n", "n", type=int, help="Nodes.")
@click.option("--k", "k", type=int, help="WS / ring degree.")
@click.option("--p", "p", type=float, help="ER edge / WS rewiring probability.")
@click.option("--m", "m", type=int, help="BA edges per node / G(n,m) edges.")
@click.option("--d", "d", type=int, help="Degree of a regular graph.")
@click.option("--directed/--undirected", default=None, help="ER / G(n,m) direction.")
@click.option("--sizes", help="MLP layer widths, e.g. 4,8,2.")
def generate(recipe, output, seed, family, count, n, k, p, m, d, directed, sizes) -> None:
    """Sample a population of random graphs from a recipe (or one family) into JSONL."""
    check_output(output, recipe)
    from topowire.topology import family_recipe, load_recipe, sample_population, write_population

    if (recipe is None) == (family is None):
        raise ParameterError("give either a RECIPE file or --family (with its parameters), not both or neither")
    rec = load_recipe(recipe) if recipe is not None else family_recipe(
        family, count, n=n, k=k, p=p, m=m, d=d, directed=directed, sizes=sizes)
    pop = sample_population(rec, seed)
    write_population(pop, output)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    dup = sum(c - 1 for c in pop.duplicates().values())
    console.print(f"wrote {len(pop)} topologies ({dup} duplicate(s)) to {output}")


@app.command()
@click.argument("population", type=_path, required=False)
@click.option("-o", "--output", type=_path, help="Table to write (.csv or .parquet).")
@click.option("--names", help="Comma-separated features or groups (default: all; see --list).")
@click.option("-j", "--jobs", type=int, default=-1, show_default=True, help="Worker processes (-1: every core).")
@click.option("--list", "list_", is_flag=True, help="Print the feature registry and exit.")
def features(population, output, names, jobs, list_) -> None:
    """Compute the graph features of every topology into a table."""
    check_output(output, population)
    from topowire._io import check_table_path, write_table
    from topowire.features import feature_table, list_features, resolve_names
    from topowire.topology import read_population

    if list_:
        return print_frame(list_features().set_index("name"), "features")
    if population is None or output is None:
        raise ParameterError("features needs a POPULATION file and -o OUTPUT (or --list)")
    check_table_path(output)
    resolve_names(names)
    pop = read_population(population)
    with progress() as update:
        df = feature_table(pop, names, n_jobs=jobs, progress=lambda d, t: update("features", d, t))
    write_table(df, output)
    repeated = f" ({len(pop) - len(df)} repeated topologies counted once)" if len(pop) > len(df) else ""
    console.print(f"wrote {df.shape[1]} features of {df.shape[0]} topologies to {output}{repeated}")


@app.command()
@click.argument("population", type=_path)
@click.option("--id", "id_", help="Show one topology.")
@click.option("--png", type=_path, help="Draw the topology (the first, or --id) to a PNG.")
def show(population, id_, png) -> None:
    """Summarise a population; optionally draw one of its graphs."""
    if png is not None:
        check_output(png, population)
    from topowire.topology import read_population

    pop = read_population(population)
    print_frame(pop.summary(), f"population ({len(pop)} graphs, seed {pop.seed})")
    topo = pop.by_id(id_) if id_ is not None else pop[0]
    if id_ is not None:
        console.print(f"{topo!r}  params={dict(topo.params)}  seed={topo.seed}  density={topo.density:.4g}")
    if png is not None:
        from topowire.report import draw_topology

        draw_topology(topo, png)
        console.print(f"drew {topo.id} to {png}")


@app.command()
@click.argument("inputs", type=_path, nargs=-1, required=True)
@click.option("-o", "--output", type=_path, required=True,
              help="A population .jsonl, or a .graphml/.gml/.edgelist/.npy graph file.")
@click.option("--id", "id_", help="With a population input: the topology to write (default: the first).")
@click.option("--directed/--undirected", default=None, help="Direction of header-less edge lists.")
def convert(inputs, output, id_, directed) -> None:
    """Convert graph files into a population, or one topology of a population into a graph file."""
    check_output(output, *inputs)
    from topowire.topology import convert_graphs

    console.print(f"wrote {convert_graphs(inputs, output, id_=id_, directed=directed)} to {output}")
