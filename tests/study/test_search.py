"""topowire search: suggest, train and refit until the budget is trained, resumable without
training anything twice; its files; and suggest on a store."""

import json
import sqlite3

import pandas as pd
import pytest

from topowire.compiler import Arch
from topowire.study import StudyConfig
from topowire.study.search import search_study
from topowire.topology import parse_recipe
from topowire.train import TrainConfig

RECIPE = parse_recipe({"population": {"seed": 5}, "family": [
    {"kind": "er", "count": 4, "n": [8, 12], "p": [0.2, 0.5]},
    {"kind": "ws", "count": 4, "n": [8, 12], "k": 2, "p": [0.0, 1.0]},
    {"kind": "ba", "count": 4, "n": [8, 12], "m": [1, 2]}]})
CONFIG = StudyConfig(arch=Arch("rnn-tanh"), train=TrainConfig(epochs=1, replicates=2), n_train=128, n_test=64)


def _stored(db):
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT topology_id, replicate FROM results").fetchall()


def test_a_search_trains_its_budget_in_rounds_and_writes_its_files(tmp_path):
    summary = search_study(RECIPE, tmp_path / "s", budget=7, batch=3, config=CONFIG, log=lambda m: None)
    rounds = [json.loads(line) for line in (tmp_path / "s" / "rounds.jsonl").read_text().splitlines()]
    assert [len(r["topology_id"]) for r in rounds] == [3, 3, 1]
    assert all(p is None or p != p for p in rounds[0]["predicted"])  # the first batch covers: nothing predicted
    assert all(isinstance(p, float) for p in rounds[1]["predicted"])
    rows = _stored(tmp_path / "s" / "runs.db")
    assert len(rows) == len(set(rows)) == 7 * 2
    table = pd.read_csv(tmp_path / "s" / "search.csv")
    assert len(table) == 7 and table["best_so_far"].is_monotonic_increasing
    assert summary["trained"] == "7 of a budget of 7 topologies, in 3 rounds" and len(summary["best"]) == 5
    assert (tmp_path / "s" / "search.png").read_bytes()[:4] == b"\x89PNG"


def test_a_search_interrupted_mid_round_resumes_without_training_anything_twice(tmp_path, monkeypatch):
    import topowire.train

    real, calls = topowire.train.train_population, []

    def cut(topologies, *args, **kwargs):  # the second round stops after its first topology
        calls.append(len(topologies))
        if len(calls) == 2:
            real(topologies[:1], *args, **kwargs)
            raise KeyboardInterrupt
        return real(topologies, *args, **kwargs)

    monkeypatch.setattr(topowire.train, "train_population", cut)
    with pytest.raises(KeyboardInterrupt):
        search_study(RECIPE, tmp_path / "s", budget=6, batch=3, config=CONFIG, log=lambda m: None)
    assert len(_stored(tmp_path / "s" / "runs.db")) == 4 * 2  # round 1, and one topology of round 2
    monkeypatch.setattr(topowire.train, "train_population", real)
    search_study(RECIPE, tmp_path / "s", budget=6, batch=3, config=CONFIG, log=lambda m: None)
    rows = _stored(tmp_path / "s" / "runs.db")
    assert len(rows) == len(set(rows)) == 6 * 2
    search_study(RECIPE, tmp_path / "s", budget=8, batch=3, config=CONFIG, log=lambda m: None)  # a larger budget
    rows = _stored(tmp_path / "s" / "runs.db")
    assert len(rows) == len(set(rows)) == 8 * 2


def test_a_budget_beyond_the_pool_is_refused_before_anything_is_written(tmp_path):
    from topowire.errors import ParameterError

    with pytest.raises(ParameterError, match=r"budget must be an integer with 1 <= budget <= 12 .*12 topologies"):
        search_study(RECIPE, tmp_path / "s", budget=13, batch=3, config=CONFIG, log=lambda m: None)
    assert not (tmp_path / "s").exists()
