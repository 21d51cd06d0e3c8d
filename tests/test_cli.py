"""The command line: happy paths, and one line + exit 2 + no output for every bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topowire.cli import main
from topowire.topology import er_graph, read_population, write_graph

ROOT = Path(__file__).parents[1]
QUICK = ROOT / "graphs" / "quick.toml"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_features_show(tmp_path, capsys):
    pop = tmp_path / "pop.jsonl"
    code, out, _ = run(["generate", QUICK, "-o", pop, "--seed", "4"], capsys)
    assert code == 0 and "wrote 75 topologies" in out
    assert read_population(pop).seed == 4
    feats = tmp_path / "f.csv"
    code, out, _ = run(["features", pop, "-o", feats, "--names", "size,dag", "-j", "1"], capsys)
    assert code == 0
    df = pd.read_csv(feats, index_col="id")
    assert df.shape == (75, 11) and list(df.index) == read_population(pop).ids
    first = read_population(pop)[2]
    png = tmp_path / "g.png"
    code, out, _ = run(["show", pop, "--id", first.id, "--png", png], capsys)
    assert code == 0 and first.id in out
    assert "clustering C and path length L drawn" in out and "avg_path_length max" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(["show", pop, "--ids"], capsys)
    assert code == 0 and "the 75 topologies" in out and all(t.id in out for t in read_population(pop))


def test_show_draws_a_recipe_and_prints_its_c_l_coverage(capsys):
    code, out, _ = run(["show", str(Path(__file__).parents[1] / "graphs" / "graph2nn.toml")], capsys)
    text = " ".join(out.split())
    assert code == 0 and "population (56 graphs, seed 2020)" in text
    assert "(C, L) coverage: 55 of the 144 cells of a 12 x 12 grid over C 0.10-1.00 and L 1.00-2.99" in text


def test_the_readme_show_example_names_a_topology_of_its_population(tmp_path, capsys):
    import re

    readme = (ROOT / "README.md").read_text()
    seed = re.search(r"topowire generate graphs/quick.toml -o pop.jsonl --seed (\d+)", readme)[1]
    shown = re.search(r"topowire show pop.jsonl --id ([0-9a-f]{16})", readme)[1]
    assert run(["generate", QUICK, "-o", tmp_path / "pop.jsonl", "--seed", seed], capsys)[0] == 0
    assert shown in read_population(tmp_path / "pop.jsonl").ids


def test_family_shortcut(tmp_path, capsys):
    pop = tmp_path / "ws.jsonl"
    code, _, _ = run(["generate", "--family", "ws", "--n", "32", "--k", "4", "--p", "0.1",
                      "--count", "10", "-o", pop], capsys)
    assert code == 0
    p = read_population(pop)
    assert len(p) == 10 and all(t.family == "ws" and t.n == 32 and t.n_edges == 64 for t in p)
    code, _, _ = run(["generate", "--family", "mlp", "--sizes", "3,4,2", "-o", tmp_path / "m.jsonl"], capsys)
    assert code == 0 and read_population(tmp_path / "m.jsonl")[0].n_edges == 20


def test_generate_twice_is_byte_identical(tmp_path, capsys):
    for name in ("a", "b"):
        assert run(["generate", QUICK, "-o", tmp_path / f"{name}.jsonl"], capsys)[0] == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_convert_both_ways(tmp_path, capsys):
    t = er_graph(12, 0.3, seed=1)
    write_graph(t, tmp_path / "g.graphml")
    write_graph(t, tmp_path / "g.npy")
    code, _, _ = run(["convert", tmp_path / "g.graphml", tmp_path / "g.npy", "-o", tmp_path / "p.jsonl"], capsys)
    assert code == 0 and read_population(tmp_path / "p.jsonl").ids == [t.id, t.id]
    code, _, _ = run(["convert", tmp_path / "p.jsonl", "-o", tmp_path / "back.gml"], capsys)
    assert code == 0 and (tmp_path / "back.gml").exists()


def test_population_commands_read_graph_files_and_folders(tmp_path, capsys):
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    made = [er_graph(10 + i, 0.3, seed=i) for i in range(6)]
    for i, t in enumerate(made):
        write_graph(t, graphs / f"g{i}.graphml")
    (graphs / "notes.md").write_text("not a graph")  # files of other suffixes are left alone
    one = graphs / "g0.graphml"
    assert run(["features", one, "-o", tmp_path / "one.csv", "--names", "size"], capsys)[0] == 0
    assert list(pd.read_csv(tmp_path / "one.csv", index_col="id").index) == [made[0].id]
    assert run(["features", graphs, "-o", tmp_path / "f.csv", "--names", "size"], capsys)[0] == 0
    assert list(pd.read_csv(tmp_path / "f.csv", index_col="id").index) == [t.id for t in made]
    db = tmp_path / "r.db"
    code, out, _ = run(["train", graphs, "--db", db, "--epochs", "1", "--replicates", "2", "--n-train", "64",
                        "--n-test", "32", "--batch-size", "32"], capsys)
    assert code == 0 and "12 models in run" in out
    assert run(["train", one, "--db", tmp_path / "one.db", "--epochs", "1", "--n-train", "64", "--n-test", "32",
                "--batch-size", "32"], capsys)[0] == 0
    from topowire.predict import save_predictor
    from topowire.study import fit_table

    table = pd.DataFrame({"n_nodes": range(10, 30), "density": [0.1 + 0.01 * i for i in range(20)],
                          "test_acc": [0.5 + 0.01 * i for i in range(20)]})
    save_predictor(fit_table(table, columns="n_nodes,density", n_estimators=10, group=None)[1], tmp_path / "p.skops")
    assert run(["predict", tmp_path / "p.skops", one, "-o", tmp_path / "pred.csv"], capsys)[0] == 0
    predicted = pd.read_csv(tmp_path / "pred.csv", index_col="id")
    assert list(predicted.index) == [made[0].id] and list(predicted["source"]) == ["g0.graphml"]
    assert run(["predict", tmp_path / "p.skops", graphs, "-o", tmp_path / "all.csv"], capsys)[0] == 0
    assert list(pd.read_csv(tmp_path / "all.csv")["source"]) == [f"g{i}.graphml" for i in range(6)]


def test_list_and_version(capsys):
    code, out, _ = run(["features", "--list"], capsys)
    assert code == 0 and "betweenness_mean" in out and "modularity" in out
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and "0.1.0" in out


def _files(tmp_path, recipe=None, population=None, graph=None):
    made = {}
    if recipe is not None:
        made["recipe"] = tmp_path / "r.toml"
        made["recipe"].write_text(recipe)
    if population is not None:
        made["pop"] = tmp_path / "p.jsonl"
        made["pop"].write_text(population)
    if graph is not None:
        made["graph"] = tmp_path / graph[0]
        made["graph"].write_bytes(graph[1])
    return made


GOOD_LINE = json.dumps({"n": 3, "edges": [[0, 1]]})
BAD_INPUTS = {
    # name: (files, argv template, expected message fragment)
    "ws-odd-k": ({}, ["generate", "--family", "ws", "--n", "10", "--k", "5", "--p", "0.1", "-o", "{out}"],
                 "k must be even with 2 <= k < n, got k = 5, n = 10"),
    "ws-k-ge-n": ({}, ["generate", "--family", "ws", "--n", "6", "--k", "6", "--p", "0.1", "-o", "{out}"],
                  "got k = 6, n = 6"),
    "ba-m-ge-n": ({}, ["generate", "--family", "ba", "--n", "5", "--m", "7", "-o", "{out}"],
                  "m must be an integer with 1 <= m <= 4 for n = 5, got m = 7"),
    "p-out-of-range": ({}, ["generate", "--family", "er", "--n", "10", "--p", "1.5", "-o", "{out}"],
                       "p must be a finite number with 0 <= p <= 1, got p = 1.5"),
    "n-below-2": ({}, ["generate", "--family", "er", "--n", "1", "--p", "0.5", "-o", "{out}"],
                  "n must be an integer >= 2, got n = 1"),
    "unknown-family": ({}, ["generate", "--family", "lattice", "--n", "5", "-o", "{out}"],
                       "unknown family 'lattice': expected one of er, gnm, ws"),
    "unknown-recipe-key": ({"recipe": "[[family]]\nkind = 'ba'\nn = 10\nm = 2\nbeta = 1\n"},
                           ["generate", "{recipe}", "-o", "{out}"], "unknown key(s) beta"),
    "malformed-toml": ({"recipe": "[[family]\nkind = 'ba'\n"}, ["generate", "{recipe}", "-o", "{out}"],
                       "is not valid TOML"),
    "empty-recipe": ({"recipe": ""}, ["generate", "{recipe}", "-o", "{out}"], "is empty"),
    "missing-recipe": ({}, ["generate", "nope.toml", "-o", "{out}"], "does not exist"),
    "recipe-and-family": ({"recipe": "x"}, ["generate", "{recipe}", "--family", "ws", "-o", "{out}"],
                          "either a RECIPE file or --family"),
    "node-out-of-range": ({"population": json.dumps({"n": 3, "edges": [[0, 7]]}) + "\n"},
                          ["features", "{pop}", "-o", "{out}.csv"], "node id 7 is out of range"),
    "node-not-integer": ({"population": json.dumps({"n": 3, "edges": [[0, "a"]]}) + "\n"},
                         ["features", "{pop}", "-o", "{out}.csv"], "node id must be an integer, got node id = 'a'"),
    "empty-population": ({"population": ""}, ["features", "{pop}", "-o", "{out}.csv"], "holds no topologies"),
    "corrupt-jsonl": ({"population": GOOD_LINE + "\n{oops\n"}, ["features", "{pop}", "-o", "{out}.csv"],
                      "p.jsonl:2: not valid JSON"),
    "corrupt-graphml": ({"graph": ("g.graphml", b"<graphml><graph><node id='a'")},
                        ["convert", "{graph}", "-o", "{out}.jsonl"], "not a valid GRAPHML file"),
    "corrupt-npy": ({"graph": ("g.npy", b"\x93NUMPY garbage")}, ["convert", "{graph}", "-o", "{out}.jsonl"],
                    "not a valid .npy array"),
    "unknown-feature": ({"population": GOOD_LINE + "\n"}, ["features", "{pop}", "-o", "{out}.csv", "--names", "girth"],
                        "unknown feature 'girth'"),
    "bad-table-suffix": ({"population": GOOD_LINE + "\n"}, ["features", "{pop}", "-o", "{out}.xlsx"],
                         "must end in .csv or .parquet"),
    "unknown-id": ({"population": GOOD_LINE + "\n"}, ["show", "{pop}", "--id", "feedbeef", "--png", "{out}.png"],
                   "no topology with id 'feedbeef'"),
    "unknown-option": ({}, ["generate", "--colour", "red", "-o", "{out}"], "No such option"),
    "bad-option-type": ({}, ["generate", "--family", "ws", "--n", "ten", "-o", "{out}"], "n must be an integer, got 'ten'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_exit_2_nothing_written(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, argv, message = BAD_INPUTS[case]
    files = _files(tmp_path, **spec)
    out = tmp_path / "out" / "result"
    args = [a.format(out=out, **{k: v for k, v in files.items()}) for a in argv]
    before = set(tmp_path.rglob("*"))
    code, stdout, stderr = run(args, capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0]
    assert "Traceback" not in stderr + stdout
    created = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
    assert created == set(), created


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "topowire.cli", "generate", "--family", "ba", "--n", "5", "--m", "7",
         "-o", str(tmp_path / "x.jsonl")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert not (tmp_path / "x.jsonl").exists()


def test_the_training_bar_advances_inside_a_pack_on_a_terminal(tmp_path, monkeypatch):
    import io

    import rich.progress
    from rich.console import Console

    from topowire import console as console_module
    from topowire.topology import Population, write_population

    write_population(Population(tuple(er_graph(10, 0.3, seed=s) for s in range(4))), tmp_path / "p.jsonl")
    monkeypatch.setattr(console_module, "console", Console(file=io.StringIO(), force_terminal=True))
    shown = []
    update = rich.progress.Progress.update
    monkeypatch.setattr(rich.progress.Progress, "update",
                        lambda self, task, **kw: shown.append(kw.get("completed")) or update(self, task, **kw))
    assert main(["train", str(tmp_path / "p.jsonl"), "--db", str(tmp_path / "r.db"), "--epochs", "2",
                 "--replicates", "1", "--chunk-size", "4", "--n-train", "128", "--n-test", "32",
                 "--batch-size", "32"]) == 0
    assert shown[0] == 0 and shown[-1] == 4
    assert 0 < min(c for c in shown if c) < 4 and len([c for c in shown if 0 < c < 4]) >= 7  # each of 8 steps


def _suggest_tables(tmp_path):
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(size=200), rng.uniform(size=200)
    t = pd.DataFrame({"topology_id": [f"t{i}" for i in range(200)], "density": x1, "avg_clustering": x2,
                      "acc": 0.6 + 0.3 * np.exp(-((x1 - 0.7) ** 2 + (x2 - 0.3) ** 2) / 0.05)})
    t.iloc[:30].to_csv(tmp_path / "res.csv", index=False)
    t.drop(columns="acc").to_csv(tmp_path / "pool.csv", index=False)
    return tmp_path / "res.csv", tmp_path / "pool.csv"


def test_suggest_on_tables_writes_the_chosen_candidates(tmp_path, capsys):
    res, pool = _suggest_tables(tmp_path)
    out = tmp_path / "next.csv"
    code, text, _ = run(["suggest", "--table", res, "--candidates", pool, "--target", "acc", "-k", "6", "--seed", "0",
                         "-o", out], capsys)
    chosen = pd.read_csv(out)
    assert code == 0 and "wrote 6 suggestions" in text and len(chosen) == 6 == chosen["topology_id"].nunique()
    assert not set(chosen["topology_id"]) & set(pd.read_csv(res)["topology_id"])
    assert {"predicted", "lower", "upper", "acquisition", "pick", "density"} <= set(chosen.columns)


@pytest.mark.parametrize("argv, message", [
    (["-k", "500"], "k must be an integer with 1 <= k <= 170 (the pool holds 170 untrained candidates)"),
    (["--outcome", "nope"], "outcome column 'nope' is not in the results"),
    (["--explore", "-1"], "explore must be"),
])
def test_suggest_refuses_bad_input_and_writes_nothing(argv, message, tmp_path, capsys):
    res, pool = _suggest_tables(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    target = [] if "--outcome" in argv else ["--outcome", "acc"]
    assert main(["suggest", "--table", str(res), "--candidates", str(pool), *target, *argv,
                 "-o", str(tmp_path / "next.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_suggest_on_a_store_writes_a_population_train_takes(tmp_path, capsys):
    pop = [er_graph(9, 0.3, seed=s) for s in range(10)]
    from topowire.topology import Population, write_population

    write_population(Population(tuple(pop)), tmp_path / "all.jsonl")
    write_population(Population(tuple(pop[:5])), tmp_path / "first.jsonl")
    train = ["--db", str(tmp_path / "r.db"), "--kind", "rnn-tanh", "--epochs", "1", "--n-train", "64", "--n-test",
             "32", "--replicates", "2"]
    assert main(["train", str(tmp_path / "first.jsonl"), *train]) == 0
    code, text, _ = run(["suggest", tmp_path / "all.jsonl", "--db", tmp_path / "r.db", "-k", "3",
                         "-o", tmp_path / "next.jsonl"], capsys)
    chosen = read_population(tmp_path / "next.jsonl")
    assert code == 0 and len(chosen) == 3 and not set(chosen.ids) & {t.id for t in pop[:5]}
    assert "seed noise: sd" in text
    assert main(["train", str(tmp_path / "next.jsonl"), *train]) == 0
    capsys.readouterr()
    assert main(["results", "--db", str(tmp_path / "r.db"), "-o", str(tmp_path / "r.csv")]) == 0
    assert pd.read_csv(tmp_path / "r.csv")["topology_id"].nunique() == 8  # one run: the five, and the three chosen


def test_train_says_it_resumes_and_how_many_models_are_left(tmp_path, capsys):
    from topowire.topology import Population, write_population

    pop = [er_graph(8, 0.4, seed=s) for s in range(4)]
    write_population(Population(tuple(pop[:2])), tmp_path / "half.jsonl")
    write_population(Population(tuple(pop)), tmp_path / "all.jsonl")
    train = ["--db", str(tmp_path / "r.db"), "--kind", "rnn-tanh", "--epochs", "1", "--n-train", "32", "--n-test", "16"]
    code, out, _ = run(["train", tmp_path / "half.jsonl", *train], capsys)
    assert code == 0 and "resuming" not in out
    code, out, _ = run(["train", tmp_path / "all.jsonl", *train], capsys)
    assert code == 0 and "resuming run " in out and "2 of this population's 4 models are trained, 2 left" in out
    code, out, _ = run(["train", tmp_path / "all.jsonl", *train], capsys)
    assert "all 4 models of this population are trained already; nothing to train" in out
    code, out, _ = run(["train", "--help"], capsys)
    assert "Its defaults (gru, 5 epochs, 1 replicate" in " ".join(out.split())
