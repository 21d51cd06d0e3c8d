"""No command overwrites one of its inputs: an output that resolves to an input is refused."""

import hashlib
import os

import pytest

from topowire.cli import main
from topowire.topology import Population, er_graph, write_population


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    pop = d / "pop.jsonl"
    write_population(Population(tuple(er_graph(10, 0.3, seed=s) for s in range(6))), pop)
    db = d / "r.db"
    assert main(["train", str(pop), "--db", str(db), "--epochs", "1", "--n-train", "32", "--n-test", "16"]) == 0
    table = d / "results.csv"
    assert main(["results", "--db", str(db), "-o", str(table)]) == 0
    predictor = d / "p.skops"
    # one epoch leaves accuracy at chance (a constant target is refused): predict the loss
    assert main(["fit", "--table", str(table), "--outcome", "test_loss", "--columns", "n,n_edges", "--trees", "5",
                 "-o", str(predictor)]) == 0
    models = d / "models"
    assert main(["compile", str(pop), "-o", str(models)]) == 0
    model = next(models.glob("*.safetensors"))
    os.symlink(table, d / "link.csv")
    os.symlink(db, d / "side.skops.json")  # a store named like fit's metadata file
    (d / "report").mkdir()
    recipe = d / "report" / "recipe.toml"
    recipe.write_text('[[family]]\nname = "er"\ncount = 3\nn = 8\np = 0.3\n')
    return {"recipe": recipe, "pop": pop, "db": db, "table": table, "predictor": predictor, "model": model, "dir": d}


CASES = [
    ("results --db {db} -o {db}", "db"),
    ("results --db {db} -o {dir}/./r.db", "db"),
    ("fit --table {table} --columns n -o {table}", "table"),
    ("fit --table {table} --columns n -o {dir}/link.csv", "table"),
    ("predict {predictor} {table} -o {table}", "table"),
    ("predict {predictor} {table} -o {predictor}", "predictor"),
    ("export {model} --format torchscript -o {model}", "model"),
    ("prune {model} --rate 0.5 -o {model}", "model"),
    ("features {pop} -o {pop}", "pop"),
    ("convert {pop} -o {pop}", "pop"),
    ("report --db {db} -o {db}", "db"),
    ("report --db {db} -o {dir}", "db"),  # the report folder would replace the folder holding the store
    ("run {dir}/report/recipe.toml -o {dir}", "recipe"),
    ("fit --db {dir}/side.skops.json -o {dir}/side.skops", "db"),  # fit also writes OUTPUT.json
]


@pytest.mark.parametrize("command, victim", CASES)
def test_an_output_that_is_an_input_is_refused(files, command, victim, capsys, monkeypatch):
    monkeypatch.chdir(files["dir"])
    before = hashlib.sha256(files[victim].read_bytes()).hexdigest()
    code = main(command.format(**files).split())
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and ("is also an input" in err[0] or "holds the input" in err[0]), err
    assert hashlib.sha256(files[victim].read_bytes()).hexdigest() == before
