"""Class 1 of the third reliability round: commands that only read a store never write it,
and train touches nothing before its whole configuration is valid."""

import hashlib
import shutil
import sqlite3

import pytest

from topowire.cli import main

from .conftest import one_error_line


def _state(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _store(kind, trained, folder):
    db = folder / "runs.db"
    if kind == "valid":
        shutil.copy(trained["db"], db)
    elif kind == "empty":
        db.write_bytes(b"")
    elif kind == "corrupt":
        data = bytearray(trained["db"].read_bytes())
        data[4096:8192] = b"\xa5" * 4096  # a page of garbage after an intact header
        db.write_bytes(bytes(data))
    elif kind == "foreign":
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE notes (x TEXT)")
        conn.close()
    elif kind == "garbage":
        db.write_bytes(b"not a database at all " * 100)
    return db


COMMANDS = {
    "results": ["results", "--db", "{db}", "-o", "{out}/r.csv"],
    "results-run": ["results", "--db", "{db}", "--run", "0123456789abcdef", "-o", "{out}/r.csv"],
    "report": ["report", "--db", "{db}", "-o", "{out}/rep", "--trees", "5"],
    "report-run": ["report", "--db", "{db}", "--run", "0123456789abcdef", "-o", "{out}/rep"],
    "fit": ["fit", "--db", "{db}", "-o", "{out}/p.skops", "--trees", "5"],
    "fit-run": ["fit", "--db", "{db}", "--run", "0123456789abcdef", "-o", "{out}/p.skops"],
}


@pytest.mark.parametrize("kind", ["valid", "empty", "corrupt", "foreign", "garbage"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_reading_a_store_leaves_its_bytes_and_folder_unchanged(kind, command, trained, tmp_path, capsys):
    stores, out = tmp_path / "stores", tmp_path / "out"
    stores.mkdir()
    out.mkdir()
    db = _store(kind, trained, stores)
    before = _state(stores)
    code = main([a.format(db=db, out=out) for a in COMMANDS[command]])
    assert _state(stores) == before
    if kind != "valid" or command.endswith("-run"):
        assert code == 2
        line = one_error_line(capsys)
        assert str(db) in line or "0123456789abcdef" in line, line
    else:
        assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("argv, env, message", [
    (["--kind", "iterative", "--stability", "0.5"], {}, "stability applies to recurrent archs"),
    (["--inputs", "foo"], {}, "inputs must be"),
    (["--kind", "iterative"], {}, "gives sequences; the iterative arch needs a static task"),
    ([], {"TOPOWIRE_CLAIM_TTL": "nan"}, "TOPOWIRE_CLAIM_TTL must be a finite number"),
])
def test_train_creates_no_store_before_its_configuration_is_valid(argv, env, message, trained, tmp_path, capsys,
                                                                   monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db = tmp_path / "r.db"
    assert main(["train", str(trained["pop"]), "--db", str(db), "--epochs", "1", *argv]) == 2
    assert message in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
