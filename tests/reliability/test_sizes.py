"""Reliability, round four: sizes estimated from the parameters and refused before anything
is allocated (one graph, a population, the models a compile writes), corrupt stores named as
such, and one line on failure even when libraries warn."""

import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from topowire.cli import main
from topowire.topology import Population, er_graph, write_population

from .conftest import one_error_line

#: Runs the command line in a fresh process and prints its peak resident memory (KiB) last:
#: the high-water mark of its own memory map (``VmHWM``; ``ru_maxrss`` would carry the
#: parent's across exec), or nothing where the platform does not report it.
PEAK = ("import sys\nfrom pathlib import Path\nfrom topowire.cli import main\ncode = main(sys.argv[1:])\n"
        "status = Path('/proc/self/status')\n"
        "hwm = [l.split()[1] for l in status.read_text().splitlines() if l.startswith('VmHWM')] if status.exists() "
        "else []\nprint('peak', *hwm)\nsys.exit(code)")


def _peak_run(argv, cwd):
    proc = subprocess.run([sys.executable, "-c", PEAK, *argv], cwd=cwd, capture_output=True, text=True, timeout=900)
    peak = proc.stdout.strip().splitlines()[-1].split()[1:]
    return proc, int(peak[0]) / 1024 if peak else 0.0


@pytest.mark.parametrize("argv, estimate, variable", [
    (["--family", "complete", "--n", "100000"], "edges (bounded from its parameters) = 4,999,950,000",
     "TOPOWIRE_MAX_TOTAL_EDGES"),
    (["--family", "ring", "--n", "100000", "--k", "99998"], "= 4,999,900,000", "TOPOWIRE_MAX_TOTAL_EDGES"),
    (["--family", "regular", "--n", "100000", "--d", "99998"], "= 4,999,900,000", "TOPOWIRE_MAX_TOTAL_EDGES"),
    (["--family", "ws", "--n", "100000", "--k", "99998", "--p", "0.5"], "= 4,999,900,000",
     "TOPOWIRE_MAX_TOTAL_EDGES"),
    (["--family", "ba", "--n", "100000", "--m", "50000"], "= 2,500,000,000", "TOPOWIRE_MAX_TOTAL_EDGES"),
    (["--family", "er", "--n", "11000", "--p", "1"], "p = 1 (expected) (60,494,500 edges) would take 3,692 MiB",
     "TOPOWIRE_MAX_MEMORY_MB"),
    (["--family", "ring", "--n", "100000", "--k", "2", "--count", "1000000"],
     "the recipe's nodes at most = 100,000,000,000", "TOPOWIRE_MAX_TOTAL_NODES"),
])
def test_a_graph_or_population_too_large_is_refused_from_its_parameters(argv, estimate, variable, tmp_path):
    proc, peak = _peak_run(["generate", *argv, "-o", "p.jsonl"], tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert estimate in err[0] and f"raise it with {variable}=" in err[0] and "limit of" in err[0], err[0]
    assert list(tmp_path.iterdir()) == []
    assert peak < 400, f"{peak:.0f} MiB"  # the interpreter and its imports: nothing of the graph was made


@pytest.mark.parametrize("family, params", [("ring", {"n": 20000, "k": 10}), ("complete", {"n": 600}),
                                            ("ba", {"n": 600, "m": 40}), ("regular", {"n": 600, "d": 40})])
def test_each_generators_own_memory_check_names_the_edges(family, params, monkeypatch):
    from topowire.limits import LimitError
    from topowire.topology import generate

    monkeypatch.setenv("TOPOWIRE_MAX_MEMORY_MB", "1")
    with pytest.raises(LimitError, match=r"edges\) would take \d+ MiB, over the limit of 1 MiB"):
        generate(family, seed=0, **params)


def test_gnm_builds_its_edge_list_in_the_memory_it_needs(tmp_path):
    proc, peak = _peak_run(["generate", "--family", "gnm", "--n", "100000", "--m", "1", "-o", "p.jsonl"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert peak < 400, f"{peak:.0f} MiB"  # no n x n table of pairs (9.3 GiB)


def test_gnm_draws_the_graphs_it_drew_with_a_table_of_pairs():
    from topowire.topology import gnm_graph

    for n, m, directed in ((9, 12, False), (9, 30, True), (40, 700, False), (2, 1, False)):
        g = gnm_graph(n, m, directed=directed, seed=7)
        u, v = np.nonzero(~np.eye(n, dtype=bool)) if directed else np.triu_indices(n, 1)
        idx = np.sort(np.random.default_rng(g.seed).choice(len(u), size=m, replace=False))
        assert {tuple(e) for e in g.edges.tolist()} == set(zip(u[idx].tolist(), v[idx].tolist()))


def test_a_population_over_the_total_edge_limit_stops_before_the_graph_that_crosses_it(monkeypatch):
    from topowire.limits import LimitError
    from topowire.topology import parse_recipe, sample_population

    monkeypatch.setenv("TOPOWIRE_MAX_TOTAL_EDGES", "250")
    recipe = parse_recipe({"family": [{"kind": "ring", "count": 5, "n": 100, "k": 2}]})
    with pytest.raises(LimitError, match="the population's edges .* = 300 exceeds the limit of 250"):
        sample_population(recipe)
    monkeypatch.setenv("TOPOWIRE_MAX_TOTAL_EDGES", "500")
    assert len(sample_population(recipe)) == 5


def test_compile_over_the_output_limit_is_refused_before_the_first_model(tmp_path, capsys, monkeypatch):
    pop = tmp_path / "pop.jsonl"
    write_population(Population(tuple(er_graph(300, 0.05, seed=s) for s in range(4))), pop)
    monkeypatch.setenv("TOPOWIRE_MAX_OUTPUT_MB", "3")
    assert main(["compile", str(pop), "--kind", "gru", "-o", str(tmp_path / "models")]) == 2
    line = one_error_line(capsys)
    assert "the 4 models' files (estimated, MiB) =" in line and "raise it with TOPOWIRE_MAX_OUTPUT_MB=" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop.jsonl"]


def test_a_terminated_compile_leaves_no_folder_behind(tmp_path, capsys, monkeypatch):
    from topowire.compiler import export

    pop = tmp_path / "pop.jsonl"
    write_population(Population(tuple(er_graph(10, 0.3, seed=s) for s in range(4))), pop)
    saved, save = [], export.save

    def save_then_terminated(*args, **kwargs):  # SIGTERM arrives once two models are written
        save(*args, **kwargs)
        saved.append(1)
        if len(saved) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(export, "save", save_then_terminated)
    assert main(["compile", str(pop), "--kind", "gru", "-o", str(tmp_path / "models")]) == 130
    assert len(saved) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["pop.jsonl"]  # no hidden folder
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is the command's alone


def _corrupt(db, trained):
    data = bytearray(trained["db"].read_bytes())
    data[4096:] = bytes(np.random.default_rng(0).integers(0, 256, len(data) - 4096, dtype=np.uint8))
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("argv", [
    ["train", "{pop}", "--db", "{db}", "--kind", "rnn-tanh", "--epochs", "1", "--n-train", "64", "--n-test", "32"],
    ["report", "--db", "{db}", "-o", "{out}/rep"],
    ["fit", "--db", "{db}", "-o", "{out}/p.skops"],
    ["results", "--db", "{db}", "-o", "{out}/r.csv"],
])
def test_a_corrupt_store_is_named_corrupt_and_left_as_it_is(argv, trained, tmp_path, capsys):
    db, out = tmp_path / "r.db", tmp_path / "out"
    out.mkdir()
    _corrupt(db, trained)
    before = db.read_bytes()
    assert main([a.format(pop=trained["pop"], db=db, out=out) for a in argv]) == 2
    line = one_error_line(capsys)
    assert f"database {str(db)!r} is corrupt (" in line and "it is left as it is" in line, line
    assert db.read_bytes() == before and list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.db"]


def _table(path, rows=40):
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"topology_id": [f"t{i}" for i in range(rows)], "family": ["a", "b"] * (rows // 2),
                      "density": rng.uniform(size=rows), "avg_clustering": rng.uniform(size=rows),
                      "params": 100 + 10 * np.arange(rows)})
    t.assign(acc=0.5 + 0.1 * t["density"] + 0.01 * rng.normal(size=rows)).to_csv(path, index=False)
    return path


def test_a_tiny_forest_prints_no_library_warning(tmp_path, capsys):
    assert main(["fit", "--table", str(_table(tmp_path / "t.csv")), "--outcome", "acc", "--trees", "5",
                 "-o", str(tmp_path / "p.skops")]) == 0
    assert capsys.readouterr().err == ""  # sklearn's "Some inputs do not have OOB scores" is handled, not printed


def test_a_failing_command_prints_one_line_whatever_libraries_warned(tmp_path, capsys, monkeypatch):
    import errno

    from topowire.cli import study

    def warn_then_fail(predictor, path):
        for _ in range(30):
            warnings.warn("Some inputs do not have OOB scores.", UserWarning)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(study, "save_predictor", warn_then_fail)
    argv = ["fit", "--table", str(_table(tmp_path / "t.csv")), "--outcome", "acc", "--trees", "5",
            "-o", str(tmp_path / "p.skops")]
    assert main(argv) == 2
    assert "Permission denied" in one_error_line(capsys)
    monkeypatch.setattr(study, "save_predictor", lambda p, path: warnings.warn("a library said so", UserWarning))
    assert main(argv) == 0
    assert capsys.readouterr().err.splitlines() == ["note: a library warned: UserWarning: a library said so"]


def test_jobs_follow_joblib(tmp_path, capsys):
    pop = tmp_path / "pop.jsonl"
    write_population(Population(tuple(er_graph(10, 0.3, seed=s) for s in range(3))), pop)
    for jobs in ("-1", "-2", "1"):
        assert main(["features", str(pop), "-o", str(tmp_path / f"f{jobs}.csv"), "--names", "size", "-j", jobs]) == 0
    frames = [pd.read_csv(tmp_path / f"f{j}.csv") for j in ("-1", "-2", "1")]
    assert all(f.equals(frames[0]) for f in frames)
    capsys.readouterr()
    assert main(["features", str(pop), "-o", str(tmp_path / "f0.csv"), "-j", "0"]) == 2
    assert "n_jobs must be a count of processes (>= 1) or negative (-1: every core), got n_jobs = 0" in \
        one_error_line(capsys)
