"""Commands that choose what to train next: suggest."""

from __future__ import annotations

import click

from topowire import search, topology
from topowire._io import check_output, read_table, write_table
from topowire.cli import app
from topowire.cli.options import PATH, RUN, fields
from topowire.console import console, print_frame
from topowire.errors import ParameterError


@app.command()
@click.argument("population", type=PATH, required=False)
@click.option("--db", type=PATH, help="Results database of the population's training run.")
@RUN
@click.option("--table", "table_path", type=PATH, help="Trained results with features and the target, instead.")
@click.option("--candidates", "candidates_path", type=PATH, help="With --table: candidates (topology_id, features).")
@fields(search.suggest_table, "target", "columns", "n_next", "acquisition", "explore", "seed", "n_estimators")
@click.option("-o", "--output", type=PATH, required=True, help="Population JSONL (from a store) or table to write.")
def suggest(population, db, run_id, table_path, candidates_path, output, **o) -> None:
    """Choose the next topologies to train: a forest's predictions and their spread, a batch spread out.

    From a population and its run's store (writes a population `train` takes), or from a results
    table and a candidate table (writes the chosen candidates with their predictions).
    """
    check_output(output, population, db, table_path, candidates_path)
    if (population is None or db is None) == (table_path is None or candidates_path is None):
        raise ParameterError("give POPULATION and --db, or --table and --candidates (not both, not neither)")
    if table_path is not None:
        out = search.suggest_table(read_table(table_path), read_table(candidates_path), **o)
        write_table(out.chosen, output, index=False)
    else:
        if o.pop("target") != "test_acc" or o.pop("columns") is not None:
            raise ParameterError("--target and --columns go with --table; a run's suggestions use its features for "
                                 "test_acc")
        out, chosen = search.suggest_population(topology.read_population(population), db, run_id, **o)
        topology.write_population(chosen, output)
    for note in out.notes:
        console.print(note)
    shown = ["topology_id", "predicted", "lower", "upper", "acquisition"]
    print_frame(out.chosen[shown].set_index("topology_id").round(4), f"the next {len(out.chosen)} to train")
    console.print(f"wrote {len(out.chosen)} suggestions to {output}")
