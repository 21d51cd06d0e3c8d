"""Commands that choose what to train next: suggest, and search (suggest, train, refit)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from topowire import topology
from topowire._io import check_output, check_output_folder, read_table, write_table
from topowire.cli import app
from topowire.cli.options import PATH, RUN, Checked, arch_of, fields, given
from topowire.console import console, print_frame, progress
from topowire.errors import ParameterError
from topowire.study import StudyConfig, search, study_preset
from topowire.train import TrainConfig

STUDY = StudyConfig()


@app.command()
@click.argument("population", type=PATH, required=False)
@click.option("--db", type=PATH, help="Results database of the population's training run.")
@RUN
@click.option("--table", "table_path", type=PATH, help="Trained results with features and the outcome, instead.")
@click.option("--candidates", "candidates_path", type=PATH, help="With --table: candidates (topology_id, features).")
@fields(search.suggest_table, "outcome", "columns", "n_next", "acquisition", "explore", "seed", "n_estimators")
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
        if o.pop("outcome") != "test_acc" or o.pop("columns") is not None:
            raise ParameterError("--outcome and --columns go with --table; a run's suggestions predict its test_acc")
        out, chosen = search.suggest_population(topology.read_population(population), db, run_id, **o)
        topology.write_population(chosen, output)
    for note in out.notes:
        console.print(note)
    shown = ["topology_id", "predicted", "lower", "upper", "acquisition"]
    print_frame(out.chosen[shown].set_index("topology_id").round(4), f"the next {len(out.chosen)} to train")
    console.print(f"wrote {len(out.chosen)} suggestions to {output}")


@app.command("search")
@click.argument("recipe", type=PATH, required=False)
@click.option("--budget", type=Checked("budget"), required=True, help="Topologies to train in all.")
@click.option("--batch", type=Checked("batch"), default=8, show_default=True, help="Topologies per round.")
@fields(STUDY.arch, "kind", unset="(default: the quick study's)")
@fields(STUDY, "task", "n_train", "n_test", unset="(default: the quick study's)")
@fields(STUDY.train, "epochs", "lr", "replicates", "device", unset="(default: the quick study's)")
@click.option("--seed", type=Checked("seed"), help="Seed of the pool's draw (unset: the recipe's) and its training.")
@fields(search.suggest_table, "acquisition", "explore")
@click.option("-o", "--output", type=PATH, default=Path("topowire-search"), show_default=True, help="Search folder.")
def search_(recipe, budget, batch, output, acquisition, explore, **o) -> None:
    """Search a recipe's draw for its best wiring: suggest, train and refit until --budget are trained.

    RECIPE: default graphs/quick.toml (the quick study's, whose arch, task and training are the defaults); running
    again resumes.
    """
    check_output_folder(output, recipe, kind="search")
    rec, base = study_preset("quick")
    arch, train = arch_of(o, base.arch), given(TrainConfig, o, make=base.train.replace)
    config = given(type(base), o, make=lambda **kw: dataclasses.replace(base, **kw, arch=arch, train=train))
    rec = topology.load_recipe(recipe) if recipe is not None else rec
    with progress() as update:
        summary = search.search_study(rec, output, budget=budget, batch=batch, config=config, acquisition=acquisition,
                                      explore=explore, log=console.print, progress=update)
    console.print(summary["trained"])
    for b in summary["best"]:
        line = f"  {b['topology_id']}: measured {b['measured']}, predicted {b['predicted']} (round {b['round']})"
        console.print(line, highlight=False)
    console.print(f"wrote {output}/ (search.csv, search.png, summary.json)")
