"""The results store, resuming, and `topowire train` / `topowire results`."""

import json
import os
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from topowire.cli import main
from topowire.compiler import Arch
from topowire.data import make_task
from topowire.store import SCHEMA_VERSION, Store, StoreError
from topowire.topology import Population, ba_graph, write_population, ws_graph
from topowire.train import TrainConfig, train_population

from . import processes

GRAPHS = [ws_graph(10 + i, 2, 0.3, seed=i) for i in range(4)] + [ba_graph(10 + i, 2, seed=i) for i in range(4)]
ARCH = Arch("gru", orientation="both", inputs="all", outputs="all")


@pytest.fixture(scope="module")
def task():
    return make_task("reber", n_train=64, n_test=32, seed=0)


def test_schema_wal_and_integrity(tmp_path):
    with Store(tmp_path / "r.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.integrity() == "ok"
        assert store.conn.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)


def test_resume_trains_only_what_is_missing(tmp_path, task):
    config = TrainConfig(epochs=1, batch_size=32, chunk_size=3)
    with Store(tmp_path / "r.db") as store:
        first = train_population(GRAPHS[:5], ARCH, task, config, store=store)
        calls = []
        again = train_population(GRAPHS, ARCH, task, config, store=store, progress=lambda d, t: calls.append((d, t)))
    assert len(first) == 5 and len(again) == 8
    # the 5 done models were skipped, the other 3 are one pack of 2 steps (64 examples, batch 32),
    # shown half done after its first step and whole only once its rows are stored
    assert calls == [(5, 8), (6.5, 8), (8, 8)]
    pd.testing.assert_frame_equal(again.iloc[:5].reset_index(drop=True), first.reset_index(drop=True))
    assert again.groupby(["topology_id", "replicate"]).size().max() == 1
    assert set(again["family"]) == {"ws", "ba"}


def test_a_store_of_several_runs_lists_them_when_none_is_chosen(tmp_path, task):
    with Store(tmp_path / "r.db") as store:
        first = train_population(GRAPHS[:2], ARCH, task, TrainConfig(epochs=1), store=store)
        second = train_population(GRAPHS[:3], Arch("rnn-tanh"), task, TrainConfig(epochs=2), store=store)
        with pytest.raises(StoreError) as caught:
            store.run()
    message = str(caught.value)
    assert "holds 2 runs: " in message and message.endswith("; choose one with --run")
    assert f"{first['run_id'][0]} (gru on reber, 1 epochs, 2 models, " in message
    assert f"{second['run_id'][0]} (rnn-tanh on reber, 2 epochs, 3 models, " in message


def test_unique_rows(tmp_path, task):
    with Store(tmp_path / "r.db") as store:
        frame = train_population(GRAPHS[:1], ARCH, task, TrainConfig(epochs=1), store=store)
        row = frame.iloc[0].to_dict()
        row["curves"] = json.loads(json.dumps(row["curves"]))
        with pytest.raises(sqlite3.IntegrityError):
            store.write_results(row["run_id"], [row])


def test_bad_databases(tmp_path):
    newer = tmp_path / "newer.db"
    with Store(newer) as store:
        store.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    before = newer.read_bytes()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        Store(newer)
    assert newer.read_bytes() == before
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk.db.* is corrupt \(file is not a database\); it is left as it is"):
        Store(tmp_path / "junk.db")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    with pytest.raises(StoreError, match="not a topowire store"):
        Store(tmp_path / "other.db")
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only files")
def test_read_only_database(tmp_path):
    path = tmp_path / "ro.db"
    Store(path).close()
    path.chmod(0o444)
    with pytest.raises(StoreError):
        Store(path)


def test_read_only_directory_is_refused_cleanly(tmp_path, capsys):
    pop = tmp_path / "p.jsonl"
    write_population(Population(tuple(GRAPHS[:1])), pop)
    code = main(["train", str(pop), "--db", "/proc/topowire.db", "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")


def _train_args(pop, db, chunk: int = 1):
    return ["train", str(pop), "--db", str(db), "--epochs", "3", "--n-train", "96", "--n-test", "32",
            "--orientation", "both", "--inputs", "all", "--outputs", "all", "--chunk-size", str(chunk),
            "--batch-size", "32"]


def _train(pop, db):
    return processes.run(_train_args(pop, db))


def test_sigkill_at_several_points_then_resume(tmp_path):
    pop = tmp_path / "p.jsonl"
    write_population(Population(tuple(GRAPHS)), pop)
    db = tmp_path / "runs.db"
    snapshots = []
    for kill_after in (1, 3, 6):  # results committed before each kill
        proc = processes.topowire(_train_args(pop, db))
        processes.wait_for_line(proc, processes.trained(kill_after))  # printed once they are stored
        proc.kill()
        proc.communicate()
        con = sqlite3.connect(db)
        snapshots.append(pd.read_sql_query("SELECT * FROM results ORDER BY topology_id, replicate", con))
        con.close()
        assert kill_after <= len(snapshots[-1]) < len(GRAPHS)
    done = _train(pop, db)
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(db)
    final = pd.read_sql_query("SELECT * FROM results ORDER BY topology_id, replicate", con)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert len(final) == len(GRAPHS)
    assert final.groupby(["run_id", "topology_id", "replicate"]).size().max() == 1
    for snap in snapshots:  # models finished before a kill keep exactly their results
        merged = snap.merge(final, on=["run_id", "topology_id", "replicate"], suffixes=("", "_final"))
        assert len(merged) == len(snap)
        for col in ("test_acc", "test_loss", "train_loss", "curves", "init_seed"):
            assert (merged[col] == merged[f"{col}_final"]).all(), col


def test_cli_train_and_results(tmp_path, capsys):
    pop = tmp_path / "p.jsonl"
    write_population(Population(tuple(GRAPHS[:3])), pop)
    db = tmp_path / "runs.db"
    args = ["train", str(pop), "--db", str(db), "--epochs", "1", "--n-train", "64", "--n-test", "32",
            "--orientation", "both", "--inputs", "all", "--outputs", "all", "--replicates", "2"]
    assert main(args) == 0
    assert "6 models in run" in capsys.readouterr().out
    out = tmp_path / "results.csv"
    assert main(["results", "--db", str(db), "-o", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 6 and {"family", "n", "n_edges", "test_acc", "replicate", "params"} <= set(table.columns)


def test_cli_trains_a_stable_rotational_wcrnn(tmp_path, capsys):
    pop = tmp_path / "p.jsonl"
    write_population(Population(tuple(GRAPHS[:2])), pop)
    db = tmp_path / "runs.db"
    assert main(["train", str(pop), "--db", str(db), "--epochs", "1", "--n-train", "64", "--n-test", "32",
                 "--kind", "wcrnn", "--residual", "rotational", "--radius", "0.95", "--phi", "0.2",
                 "--stability", "0.8", "--orientation", "both", "--inputs", "all", "--outputs", "all"]) == 0
    with Store(db) as store:
        arch, config = store.conn.execute("SELECT arch, config FROM runs").fetchone()
    arch, config = json.loads(arch), json.loads(config)
    assert (arch["kind"], arch["residual"], arch["r"], arch["phi"]) == ("wcrnn", "rotational", 0.95, 0.2)
    assert config["stability"] == 0.8


@pytest.mark.parametrize("argv, message", [
    (["train", "{missing}", "--db", "{db}"], "does not exist"),
    (["train", "{corrupt}", "--db", "{db}"], "not valid JSON"),
    (["train", "{pop}", "--db", "{db}", "--task", "sudoku"], "unknown task 'sudoku': expected one of reber"),
    (["train", "{pop}", "--db", "{newer}"], "newer than"),
    (["train", "{pop}", "--db", "{db}", "--stability", "1.5"], "stability must be"),
    (["train", "{pop}", "--db", "{db}", "--kind", "wcrnn", "--residual", "spiral"], "unknown residual 'spiral': expected one of homogeneous"),
    (["results", "--db", "{missing}", "-o", "{out}"], "does not exist"),
])
def test_train_bad_input(argv, message, tmp_path, capsys):
    files = {"missing": tmp_path / "missing.jsonl", "corrupt": tmp_path / "corrupt.jsonl", "pop": tmp_path / "p.jsonl",
             "db": tmp_path / "runs.db", "newer": tmp_path / "newer.db", "out": tmp_path / "out.csv"}
    files["corrupt"].write_text("{not json\n")
    write_population(Population(tuple(GRAPHS[:1])), files["pop"])
    with Store(files["newer"]) as store:
        store.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    newer_bytes = files["newer"].read_bytes()
    code = main([a.format(**files) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not files["db"].exists() and not files["out"].exists()
    assert files["newer"].read_bytes() == newer_bytes


def _results(db):
    con = sqlite3.connect(db)
    frame = pd.read_sql_query("SELECT topology_id, replicate, test_acc, test_loss, curves FROM results "
                              "ORDER BY topology_id, replicate", con)
    claims = con.execute("SELECT count(*) FROM claims").fetchone()[0]
    con.close()
    return frame, claims


@pytest.mark.parametrize("n_procs", [2, 3])
def test_concurrent_train_processes_share_one_store(tmp_path, n_procs):
    pop = tmp_path / "p.jsonl"
    write_population(Population(tuple(GRAPHS)), pop)
    alone = tmp_path / "alone.db"
    assert _train(pop, alone).returncode == 0
    db = tmp_path / "shared.db"
    procs = [processes.topowire(_train_args(pop, db)) for _ in range(n_procs)]
    outs = [p.communicate(timeout=processes.HANG_GUARD)[0] for p in procs]
    for p, out in zip(procs, outs):  # every process exits 0 and sees the whole run
        assert p.returncode == 0, out
        assert f"{len(GRAPHS)} models in run" in out
    shared, claims = _results(db)
    reference, _ = _results(alone)
    assert claims == 0 and len(shared) == len(GRAPHS)  # one row per model: none trained twice
    pd.testing.assert_frame_equal(shared, reference)


_OPEN_WHEN_TOLD = """
import sys
from topowire.store import Store
print("ready", flush=True)
sys.stdin.read()  # every process blocks here until the test closes its stdin: then all open at once
with Store(sys.argv[1]) as store:
    store.conn.execute("SELECT count(*) FROM results").fetchone()
"""


def test_processes_creating_one_new_store_at_once_all_open_it(tmp_path):
    """Eight processes open one store that does not exist yet, released together: each opens
    it (none sees it half-made, locked, or deleted by another) and one whole store is left."""
    for round_ in range(6):
        path = tmp_path / f"r{round_}.db"
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_WHEN_TOLD, str(path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
        assert [proc.stdout.readline() for proc in procs] == ["ready\n"] * 8
        for proc in procs:
            proc.stdin.close()
        errors = [proc.stderr.read() for proc in procs]
        for proc in procs:
            proc.wait(timeout=900)
        assert [proc.returncode for proc in procs] == [0] * 8, [e for e in errors if e]
        con = sqlite3.connect(path)
        assert con.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.close()
    assert sorted(f.name for f in tmp_path.iterdir()) == [f"r{i}.db" for i in range(6)]  # no copies left


def test_a_killed_process_claims_are_taken_over(tmp_path):
    pop = tmp_path / "p.jsonl"
    write_population(Population(tuple(GRAPHS)), pop)
    db = tmp_path / "runs.db"
    proc = processes.topowire(_train_args(pop, db, chunk=2))
    processes.wait_for_line(proc, processes.in_training)  # killed while it trains a pack it has claimed
    proc.kill()
    proc.communicate()
    con = sqlite3.connect(db)
    held = con.execute("SELECT count(*) FROM claims").fetchone()[0]
    con.close()
    assert held == 2, "the killed process held no claim"  # a pack of two models
    done = _train(pop, db)
    assert done.returncode == 0, done.stderr
    final, claims = _results(db)
    assert claims == 0 and len(final) == len(GRAPHS)
