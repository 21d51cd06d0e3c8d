"""Files written by the previous release still load and mean what they meant
(``tests/fixtures/release-0.1``, made by topowire 0.1; see its README)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from topowire.cli import main
from topowire.compiler.export import load
from topowire.predict import load_predictor, predict
from topowire.store import open_existing

FIXTURES = Path(__file__).parent / "fixtures" / "release-0.1"
OUTPUTS = json.loads((FIXTURES / "model_outputs.json").read_text())


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_a_saved_model_loads_and_computes_what_it_computed(name):
    net = load(FIXTURES / f"model_{name}.safetensors")
    x = torch.tensor(OUTPUTS[name]["x"])
    with torch.no_grad():
        y = net(x) if x.dim() == 2 else net(x, torch.tensor([6, 4, 3, 6]))
    np.testing.assert_allclose(y.numpy(), np.array(OUTPUTS[name]["y"]), rtol=1e-5, atol=1e-6)


def test_a_store_reads_as_it_was_written(tmp_path):
    with open_existing(FIXTURES / "store.db") as store:
        run = store.run()
        results = store.results()
    before = pd.read_csv(FIXTURES / "results.csv")
    assert run["run_id"] == before["run_id"].iloc[0] and len(results) == 12
    np.testing.assert_allclose(results["test_acc"].to_numpy(), before["test_acc"].to_numpy())
    db = shutil.copy(FIXTURES / "store.db", tmp_path / "store.db")
    assert main(["results", "--db", str(db), "-o", str(tmp_path / "r.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "r.csv")) == 12


def test_a_saved_predictor_predicts_what_it_predicted():
    predictor = load_predictor(FIXTURES / "predictor.skops")  # its metadata calls the outcome "target"
    assert predictor.outcome == "test_loss" and "target" not in predictor.meta
    got = predict(predictor, pd.read_csv(FIXTURES / "table.csv"))
    want = pd.read_csv(FIXTURES / "predictions.csv")
    np.testing.assert_allclose(got["predicted_test_loss"].to_numpy(), want["predicted_test_loss"].to_numpy())


def test_a_run_of_the_previous_release_resumes_under_its_own_id(tmp_path, monkeypatch):
    from topowire.compiler import Arch
    from topowire.data import make_task
    from topowire.topology import read_population
    from topowire.train import TrainConfig, train_population, trainer

    db = shutil.copy(FIXTURES / "store.db", tmp_path / "store.db")
    monkeypatch.setattr(trainer, "train_pack", lambda *a, **k: pytest.fail("a model was trained again"))
    frame = train_population(list(read_population(FIXTURES / "population.jsonl")), Arch("rnn-tanh"),
                             make_task("reber", seed=0, n_train=96, n_test=48),
                             TrainConfig(epochs=2, replicates=2, lr=0.05), store=db)
    assert len(frame) == 12 and set(frame["run_id"]) == {pd.read_csv(FIXTURES / "results.csv")["run_id"].iloc[0]}
