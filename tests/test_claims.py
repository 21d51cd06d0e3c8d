"""Claims: live ones respected, expired ones free again, a held model released with its result."""

import time

import pytest

from topowire.claims import Claims
from topowire.compiler import Arch
from topowire.data import make_task
from topowire.errors import ParameterError
from topowire.store import Store
from topowire.topology import ws_graph
from topowire.train import TrainConfig
from topowire.train.spec import RunSpec

GRAPHS = [ws_graph(10 + i, 2, 0.3, seed=i) for i in range(2)]
ARCH = Arch("gru", orientation="both", inputs="all", outputs="all")


def test_claims_expire_by_heartbeat_and_live_ones_are_respected(tmp_path, monkeypatch):
    task = make_task("reber", n_train=64, n_test=32, seed=0)
    config = TrainConfig(epochs=1, chunk_size=1)
    with Store(tmp_path / "r.db") as store:
        spec = RunSpec.of(ARCH, task, config)
        rid = spec.run_id(task)
        store.ensure_run(rid, spec, GRAPHS[:2])
        claims = Claims(store)
        other = "another-host/1/abcd"  # a process elsewhere: only its heartbeat tells if it lives
        store.conn.execute("INSERT INTO claims VALUES (?, ?, 0, ?, ?)", (rid, GRAPHS[0].id, other, time.time()))
        seen = []
        claims.claim(rid, lambda taken: seen.append(set(taken)) or (None, []))
        assert seen[-1] == {(GRAPHS[0].id, 0)}  # live: not ours to take
        monkeypatch.setenv("TOPOWIRE_CLAIM_TTL", "5")
        store.conn.execute("UPDATE claims SET heartbeat = ?", (time.time() - 6,))
        claims.claim(rid, lambda taken: seen.append(set(taken)) or (None, []))
        assert seen[-1] == set()  # expired: free again
        monkeypatch.setenv("TOPOWIRE_CLAIM_TTL", "soon")
        with pytest.raises(ParameterError, match="TOPOWIRE_CLAIM_TTL must be"):
            claims.claim(rid, lambda taken: (None, []))


def test_a_claimed_model_is_held_until_its_result_is_written(tmp_path):
    """What ``pick`` returns is claimed and held by this owner; another owner sees it taken;
    writing its result ends the claim in the same transaction; leaving the heartbeat drops the rest."""
    task = make_task("reber", n_train=64, n_test=32, seed=0)
    with Store(tmp_path / "r.db") as store:
        spec = RunSpec.of(ARCH, task, TrainConfig(epochs=1))
        rid = spec.run_id(task)
        store.ensure_run(rid, spec, GRAPHS)
        mine, other = Claims(store), Claims(store)
        assert mine.owner != other.owner
        with mine.heartbeat():
            got = mine.claim(rid, lambda taken: ("first", [(GRAPHS[0].id, 0), (GRAPHS[1].id, 0)]))
            assert got == "first" and mine.held(rid) == {(GRAPHS[0].id, 0), (GRAPHS[1].id, 0)}
            seen = []
            other.claim(rid, lambda taken: seen.append(set(taken)) or (None, []))
            assert seen == [{(GRAPHS[0].id, 0), (GRAPHS[1].id, 0)}] and other.held(rid) == set()
            row = {"topology_id": GRAPHS[0].id, "replicate": 0, "init_seed": 0, "status": "ok", "train_loss": 0.5,
                   "test_loss": 0.5, "test_acc": 0.9, "diverged_epoch": None, "params": 1, "params_graph": 1,
                   "seconds": 1.0, "curves": {}}
            store.write_results(rid, [row])
            assert mine.held(rid) == {(GRAPHS[1].id, 0)} and store.done(rid) == {(GRAPHS[0].id, 0)}
        assert mine.held(rid) == set()
