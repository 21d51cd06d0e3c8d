"""A small trained store and its population, shared by the reliability tests."""

import pytest

from topowire.cli import main
from topowire.topology import Population, er_graph, write_population


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """``{"dir", "pop", "db"}``: six ER graphs trained one epoch on a small Reber set."""
    d = tmp_path_factory.mktemp("trained")
    pop, db = d / "pop.jsonl", d / "runs.db"
    write_population(Population(tuple(er_graph(8 + s, 0.4, seed=s) for s in range(6))), pop)
    assert main(["train", str(pop), "--db", str(db), "--kind", "rnn-tanh", "--epochs", "1", "--replicates", "2",
                 "--n-train", "64", "--n-test", "32"]) == 0
    return {"dir": d, "pop": pop, "db": db}


def one_error_line(capsys) -> str:
    """The single ``error: ...`` line a refused command printed on stderr."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]
