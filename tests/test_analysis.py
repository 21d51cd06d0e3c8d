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
    ("stable_truncation.py", ["gaps.csv", "slopes.csv", "summary.md", "gap.png"]),
    ("wcrnn_smnist.py", ["results.csv", "summary.md", "heatmap.png"]),
    ("darji_pruning.py", ["results.csv", "summary.md", "accuracy.png"]),
    ("graph2nn.py", ["graphs.csv", "summary.json", "cl_map.png", "runs.db"]),
])
def test_smoke(script, files, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / script), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in files:
        assert (tmp_path / name).is_file(), name
    if script == "graph2nn.py":
        import json

        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["task"] == "digits" and summary["graphs"] == 27 and summary["size_design"]["matched"]
        assert summary["size_design"]["columns"] == ["flops"] and summary["flops"]["spread"] <= 0.02
        assert summary["protocol"] == "graph2nn" and summary["train"]["schedule"] == "cosine"
        assert summary["width"][0] == 128 < summary["width"][1] and summary["complete_graph"]["rank"] >= 1
        return
    if script == "stable_truncation.py":
        slopes = pd.read_csv(tmp_path / "slopes.csv")
        assert set(slopes["regime"]) == {"stable", "unconstrained"} and set(slopes["family"]) == {"ws", "er", "ba"}
        # the stable models obey the bound they were trained under
        assert (slopes.loc[slopes.regime == "stable", "spectral_norm"] <= 0.9 + 1e-6).all()
        return
    results = pd.read_csv(tmp_path / "results.csv")
    assert results["test_acc"].between(0, 1).all()
    if script == "wcrnn_smnist.py":
        assert set(results["r"]) == {0.9, 1.0} and results["phi"].nunique() == 2
    elif script == "darji_pruning.py":
        assert set(results["regime"]) == {"ih", "hh", "both"} and results["cell"].nunique() == 4
        full = results[results.rate == 1.0]
        assert (full["connections_kept"] == 0).all()
        assert "| gru | both |" in (tmp_path / "summary.md").read_text()
    elif script == "darji2021.py":
        assert set(results["mode"]) == {"thesis", "corrected"} and results["cell"].nunique() == 4
        assert "| thesis | gru |" in (tmp_path / "summary.md").read_text()
    else:
        assert set(results["model"]) == {"mlp", "randomized"}
        assert results.groupby("model")["trainable"].first().nunique() == 1  # equal trainable counts


def test_the_wiring_beyond_size_population_is_matched_and_the_design_script_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / "wiring_beyond_size.py"), "--smoke",
                           "--cell-types", "rnn-tanh", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = pd.read_csv(tmp_path / "results.csv")
    cells = results.groupby(["n", "n_edges"])["family"].agg(set)
    # every cell holds the three families at one size: nodes and edges alike
    assert len(cells) == 2 and all(f == {"er", "ws", "ba"} for f in cells)
    assert {"ceiling", "r2_forest", "r2_best-feature"} <= set(pd.read_csv(tmp_path / "scores.csv").columns)
    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / "default_study_design.py"), "--smoke",
                           "--designs", "small-reber-tanh-3ep", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"design": "small-reber-tanh-3ep"' in (tmp_path / "designs.jsonl").read_text()
