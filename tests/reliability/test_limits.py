"""Class 4 of the third reliability round: work the node limit does not see is estimated
before it is allocated, and refused with the limit and the variable that raises it."""

import json

import pytest

from topowire.cli import main
from topowire.compiler import Arch
from topowire.compiler import export as export_module
from topowire.topology import Population, er_graph, read_population, write_population

from .conftest import one_error_line

LIMIT = "raise it with TOPOWIRE_MAX_MEMORY_MB="


def _wide(tmp_path, n=20_000):
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps({"n": n, "edges": [[i, i + 1] for i in range(0, n - 1, 50)]}) + "\n")
    return path


@pytest.mark.parametrize("argv, message", [
    (["features", "{wide}", "-o", "{dir}/f.csv", "--names", "distance"], "the distance matrix of a graph of 20,000 nodes"),
    (["features", "{wide}", "-o", "{dir}/f.csv", "--names", "spectral"], "the spectrum of a graph of 20,000 nodes"),
    (["show", "{wide}", "--png", "{dir}/g.png"], "a drawing of a graph of 20,000 nodes"),
    (["convert", "{huge}", "--id", "{huge_id}", "-o", "{dir}/g.npy"], "a dense adjacency of 100,000 nodes"),
    (["generate", "--family", "mlp", "--sizes", "30000,30000,30000", "-o", "{dir}/m.jsonl"], "an MLP graph of 1,800,000,000 edges"),
    (["train", "{wider}", "--db", "{dir}/r.db", "--kind", "gru", "--epochs", "1"], "training a gru model of 6,000 neurons"),
])
def test_memory_hungry_work_is_refused_before_it_starts(argv, message, tmp_path, capsys):
    huge = tmp_path / "huge.jsonl"
    huge.write_text(json.dumps({"n": 100_000, "edges": [[0, 1]]}) + "\n")
    wider = tmp_path / "wide6000.jsonl"
    write_population(Population((er_graph(6_000, 0.0005, seed=0),)), wider)
    files = {"wide": _wide(tmp_path), "huge": huge, "huge_id": read_population(huge)[0].id, "dir": tmp_path,
             "wider": wider}
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([a.format(**files) for a in argv]) == 2
    line = one_error_line(capsys)
    assert message in line and LIMIT in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_show_summarises_a_graph_too_large_for_its_path_lengths(tmp_path, capsys):
    # the summary needs no distance matrix; C and L say why they are missing instead of failing
    assert main(["show", str(_wide(tmp_path))]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "population (1 graphs" in out
    assert "path length L not computed: the distance matrix of a graph of 20,000 nodes" in out


def test_compile_holds_one_model_at_a_time(tmp_path, monkeypatch):
    pop = [er_graph(12, 0.3, seed=s) for s in range(4)]
    events = []
    compile_ = __import__("topowire.compiler", fromlist=["compile"]).compile
    monkeypatch.setattr("topowire.compiler.compile", lambda *a, **k: events.append("compile") or compile_(*a, **k))
    save = export_module.save
    monkeypatch.setattr(export_module, "save", lambda *a, **k: events.append("save") or save(*a, **k))
    assert export_module.save_models(pop, Arch("gru"), tmp_path / "models") == 4
    assert events == ["compile", "save"] * 4
