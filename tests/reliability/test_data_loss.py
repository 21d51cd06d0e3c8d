"""Class 0 of the third reliability round: no command deletes or overwrites what it did not write.

An output folder is never the current directory, the home directory or a folder holding
an input; an existing one is replaced only when topowire wrote it (its marker file says
so), and a study folder rewrites only its own files.
"""

import hashlib
import shutil

import pytest

from topowire.cli import main

from .conftest import one_error_line


def _snapshot(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["current-directory", "user-folder", "home", "holds-the-store"])
def test_a_report_never_replaces_a_folder_topowire_did_not_write(case, trained, tmp_path, capsys, monkeypatch):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "thesis.tex").write_text("a user's own file")
    (work / "data.csv").write_text("x\n1\n")
    db = shutil.copy(trained["db"], tmp_path / "runs.db")
    monkeypatch.chdir(work if case == "current-directory" else home.parent)
    monkeypatch.setenv("HOME", str(home))
    out, expected = {"current-directory": (".", "is the current directory"),
                     "user-folder": (str(work), "'data.csv' and 1 more, which topowire did not write"),
                     "home": (str(home), "is the home directory"),
                     "holds-the-store": (str(tmp_path), "holds the input")}[case]
    before = _snapshot(tmp_path)
    assert main(["report", "--db", str(db), "-o", out, "--trees", "5"]) == 2
    assert expected in one_error_line(capsys)
    assert _snapshot(tmp_path) == before


def test_a_report_folder_is_replaced_only_when_topowire_wrote_it(trained, tmp_path, capsys):
    db = shutil.copy(trained["db"], tmp_path / "runs.db")
    rep = tmp_path / "rep"
    assert main(["report", "--db", str(db), "-o", str(rep), "--trees", "5"]) == 0
    assert (rep / "index.html").is_file()
    assert main(["report", "--db", str(db), "-o", str(rep), "--trees", "5"]) == 0  # its own folder: replaced
    (rep / "notes.txt").write_text("mine")
    before = _snapshot(rep)
    capsys.readouterr()
    assert main(["report", "--db", str(db), "-o", str(rep), "--trees", "5"]) == 2
    assert "'notes.txt', which topowire did not write" in one_error_line(capsys)
    assert _snapshot(rep) == before


def test_run_refuses_a_folder_that_holds_its_recipe(tmp_path, capsys):
    st = tmp_path / "st"
    st.mkdir()
    recipe = st / "population.jsonl"  # named like one of run's outputs
    recipe.write_text('[[family]]\nkind = "er"\ncount = 4\nn = 8\np = 0.3\n')
    before = recipe.read_bytes()
    assert main(["run", str(recipe), "-o", str(st), "--epochs", "1"]) == 2
    assert "holds the input" in one_error_line(capsys)
    assert recipe.read_bytes() == before and sorted(p.name for p in st.iterdir()) == ["population.jsonl"]


def test_run_refuses_an_unmarked_folder_of_other_files(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "results.csv").write_text("a user's results\n")
    assert main(["run", "-o", str(tmp_path / "mine"), "--epochs", "1"]) == 2
    assert "'results.csv', which topowire did not write" in one_error_line(capsys)
    assert (tmp_path / "mine" / "results.csv").read_text() == "a user's results\n"


def test_compile_replaces_its_own_models_folder_but_no_other(trained, tmp_path, capsys):
    models = tmp_path / "models"
    assert main(["compile", str(trained["pop"]), "-o", str(models)]) == 0
    assert main(["compile", str(trained["pop"]), "-o", str(models), "--seed", "1"]) == 0
    (models / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["compile", str(trained["pop"]), "-o", str(models)]) == 2
    assert "did not write" in one_error_line(capsys) and (models / "keep.txt").read_text() == "mine"


def test_threads_beyond_what_torch_can_start_are_refused_not_a_crash(trained, tmp_path, capsys):
    db = tmp_path / "r.db"
    assert main(["train", str(trained["pop"]), "--db", str(db), "--threads", "100000", "--epochs", "1"]) == 2
    assert "threads must be an integer with 1 <= threads <= 1024" in one_error_line(capsys)
    assert not db.exists()
