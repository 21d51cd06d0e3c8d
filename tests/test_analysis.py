"""The reproduction scripts run end to end in their smoke modes."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("script, files", [
    ("sequential2d_mnist.py", ["results.csv", "summary.md", "curves.png"]),
    ("darji2021.py", ["results.csv", "scores.csv", "importances.csv", "summary.md"]),
])
def test_smoke(script, files, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / script), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in files:
        assert (tmp_path / name).is_file(), name
    results = pd.read_csv(tmp_path / "results.csv")
    assert results["test_acc"].between(0, 1).all()
    if script == "darji2021.py":
        assert set(results["mode"]) == {"thesis", "corrected"} and results["cell"].nunique() == 4
        assert "| thesis | gru |" in (tmp_path / "summary.md").read_text()
    else:
        assert set(results["model"]) == {"mlp", "randomized"}
        assert results.groupby("model")["trainable"].first().nunique() == 1  # equal trainable counts
