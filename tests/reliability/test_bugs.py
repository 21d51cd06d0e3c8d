"""Class 7 of the third reliability round: bugs found on the way."""

import subprocess
import sys

from topowire.cli import main

from .conftest import one_error_line


def test_prune_refuses_an_iterative_model_in_one_line(trained, tmp_path, capsys):
    models = tmp_path / "models"
    assert main(["compile", str(trained["pop"]), "--kind", "iterative", "--d-in", "7", "-o", str(models)]) == 0
    model = next(models.glob("*.safetensors"))
    capsys.readouterr()
    assert main(["prune", str(model), "--rate", "0.5", "-o", str(tmp_path / "pruned.safetensors")]) == 2
    assert "prune() takes a masked recurrent model or a layered model" in one_error_line(capsys)
    assert not (tmp_path / "pruned.safetensors").exists()


def test_fit_on_a_run_refuses_columns_it_does_not_have_or_use(trained, tmp_path, capsys):
    for extra, message in ((["--group", "nope"], "group column 'nope' is not in the table"),
                           (["--size-columns", "nope"], "size column 'nope' is not in the table"),
                           (["--columns", "density"], "--columns and --outcome go with --table")):
        assert main(["fit", "--db", str(trained["db"]), "-o", str(tmp_path / "p.skops"), *extra]) == 2
        assert message in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_two_torchscript_exports_of_one_model_are_byte_identical(trained, tmp_path):
    models = tmp_path / "models"
    assert main(["compile", str(trained["pop"]), "--kind", "lstm", "-o", str(models)]) == 0
    model = next(models.glob("*.safetensors"))
    for name in ("a.pt", "b.pt"):  # two processes, as two commands are
        subprocess.run([sys.executable, "-m", "topowire.cli", "export", str(model), "--format", "torchscript",
                        "-o", str(tmp_path / name)], check=True, capture_output=True)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
