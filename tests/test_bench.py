"""The prepared device run cannot rot: its dry run (every step on the CPU, toy sizes) passes; the
relational block product the bench measures computes the dense masked layer; bench_train undoes
one engine change per variant; bench_heap runs both of its sides; bench_inputs checks its two
ways' losses equal before it times them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_device_check_dry_run_passes_every_step(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert list(report["steps"]) == ["cuda-tests", "agreement", "roofline", "packed-vs-loop", "scaling", "run",
                                     "thesis-scale", "graph2nn"]
    assert all(step["ok"] for step in report["steps"].values())
    assert report["steps"]["agreement"]["max_abs_gap_fp32"] == 0.0  # the CPU against itself
    assert [row["batch"] for row in report["steps"]["packed-vs-loop"]["rows"]] == [128, 32]
    table = (tmp_path / "device_check.md").read_text()
    assert table.startswith("# device check: cpu") and "| thesis-scale | True |" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there: the full check would run")
def test_without_a_gpu_the_full_check_is_refused_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 2 and done.stderr.strip() == "error: no CUDA device; --dry-run runs every step on the CPU"
    assert not (tmp_path / "device_check.json").exists()


def test_the_relational_block_product_of_the_bench_equals_the_dense_masked_layer():
    # the script checks the two products equal before it times them (an assert), on spread degrees too
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_relational.py"), "--width", "48", "--batch", "4",
                           "--models", "2", "--rounds", "1", "--degrees", "5.5", "63", "--p", "0.5"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 5.5 |") or line.startswith("| 63 |")]
    assert len(rows) == 2 and all(float(row.split("|")[-2]) < 1e-4 for row in rows)
    network = subprocess.run([*done.args, "--network"], capture_output=True, text=True, timeout=600)
    assert network.returncode == 0, network.stdout + network.stderr[-3000:]
    rows = [line.split("|") for line in network.stdout.splitlines() if line.startswith(("| 5.5 |", "| 63 |"))]
    # FLOPs matched: the sparse graph's layers are wider; the complete graph's never run on blocks
    assert [(row[4].strip(), row[-2].strip()) for row in rows] == [("155", "3 of 3"), ("48", "0 of 3")]


def test_bench_train_undoes_one_engine_change_per_variant(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import bench_train

    from topowire.compiler import functional, kernels

    x = torch.nn.functional.one_hot(torch.tensor([[0, 2, 1]]), 3).float()
    from topowire.compiler.targets.recurrent import CellTarget

    losses = CellTarget.losses
    with bench_train.reference_path("scored-outputs"):
        assert CellTarget.losses(None, None, None, None, None, "classification") is None
        assert kernels.enabled() == (kernels.library() is not None)
    assert CellTarget.losses is losses  # restored
    from topowire.compiler import sequence

    w, b, narrow = torch.randn(1, 3, 6), torch.randn(1, 1, 6), torch.randn(2, 4, 3)
    with bench_train.reference_path("projected-input"):
        assert sequence._inputs(narrow, w, b, 16, 16)[2] is None  # every step's projection
        assert sequence._inputs(x, w, b, 16, 16)[1] is not None  # one-hot: the table as ever
    assert sequence._inputs(narrow, w, b, 16, 16)[2] is not None  # restored: the kernels' values
    with bench_train.reference_path("torch-cells"):
        assert not kernels.enabled() and functional.one_hot_symbols(x) is not None
    with bench_train.reference_path("product-input"):
        assert functional.one_hot_symbols(x) is None and kernels.enabled() == (kernels.library() is not None)
    from topowire.train.optim import StackedAdam

    fused = StackedAdam.step
    with bench_train.reference_path("elementwise-adam"):
        assert StackedAdam.step is StackedAdam.step_elementwise and kernels.enabled() == (kernels.library() is not None)
    assert StackedAdam.step is fused
    assert functional.one_hot_symbols(x).tolist() == [[0, 2, 1]]  # restored


def test_bench_heap_runs_each_side_in_a_fresh_process_and_prints_both():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_heap.py"), "--models", "6", "--batch", "16",
                           "--n-train", "40", "--rounds", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in done.stdout.splitlines()
            if line.startswith(("| kept heap |", "| returned heap |"))}
    assert set(rows) == {"kept heap", "returned heap"}
    assert all(float(rate) > 0 and int(faults) >= 0 for rate, faults, _ in rows.values())
    assert "kept over returned:" in done.stdout


def test_bench_inputs_times_both_ways_after_checking_their_losses_equal():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_inputs.py"), "--task", "adding", "--kinds", "gru",
                           "--models", "2", "--batch", "4", "--n-train", "8", "--rounds", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| adding |")]
    assert len(rows) == 1 and rows[0][1].strip() == "gru" and rows[0][2].strip() == "50"
    assert float(rows[0][4]) > 0 and float(rows[0][5]) > 0 and rows[0][6].strip().endswith("x")
