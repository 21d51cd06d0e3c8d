"""The Ray executor on a real local cluster (ray.init(num_cpus=2)): same results as the
local executor, retries of a killed worker, failures stored, resume after a killed driver."""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'topowire[ray]'")

from topowire.compiler import Arch  # noqa: E402
from topowire.data import make_task  # noqa: E402
from topowire.store import Store  # noqa: E402
from topowire.topology import Population, er_graph, write_population  # noqa: E402
from topowire.train import TrainConfig, train_population  # noqa: E402
from topowire.train.executors import LOCAL_CLUSTER, RayExecutor  # noqa: E402
from topowire.train.trainer import pack_jobs, prepare_arch  # noqa: E402

from .. import processes  # noqa: E402

POP = [er_graph(10 + i, 0.3, seed=i) for i in range(6)]
CONFIG = TrainConfig(epochs=2, replicates=2, chunk_size=3)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, logging_level="ERROR", log_to_driver=False, **LOCAL_CLUSTER)  # as the executor's
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's jobs reach the workers
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def task():
    return make_task("reber", n_train=128, n_test=64, seed=0)


def test_the_same_metrics_as_the_local_executor(cluster, task, tmp_path):
    local = train_population(POP, Arch("gru"), task, CONFIG)
    with Store(tmp_path / "r.db") as store:
        remote = train_population(POP, Arch("gru"), task, CONFIG, store=store, executor=RayExecutor(workers=2))
    key = ["topology_id", "replicate"]
    local, remote = local.sort_values(key).reset_index(drop=True), remote.sort_values(key).reset_index(drop=True)
    assert len(remote) == 12 and (remote["status"] == "ok").all()
    for column in ("init_seed", "test_acc", "test_loss", "train_loss"):
        np.testing.assert_array_equal(remote[column].to_numpy(), local[column].to_numpy())


class _DiesOnce:
    """A pack job whose first attempt kills its worker process mid-pack."""

    def __init__(self, job, marker: Path, always: bool = False):
        self.job, self.marker, self.always = job, marker, always
        self.specs = job.specs

    def run(self, task):
        if self.always or not self.marker.exists():
            self.marker.touch()
            os._exit(1)  # the worker process dies, as if killed
        return self.job.run(task)

    def failed_rows(self, error):
        return self.job.failed_rows(error)


def _jobs(task, tmp_path, always=False):
    arch = prepare_arch(Arch("rnn-tanh"), task, CONFIG)
    return [_DiesOnce(j, tmp_path / f"died{i}", always) for i, j in enumerate(pack_jobs(POP[:3], arch, task, CONFIG))]


def test_a_killed_worker_is_retried_and_every_model_has_one_row(cluster, task, tmp_path):
    jobs = _jobs(task, tmp_path)
    rows = [r for _, pack_rows in RayExecutor(workers=2, retries=2).map(jobs, task) for r in pack_rows]
    assert all((tmp_path / f"died{i}").exists() for i in range(len(jobs)))  # every pack's worker died once
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    assert len({(r["topology_id"], r["replicate"]) for r in rows}) == 6


def test_a_pack_that_keeps_failing_is_stored_failed_with_its_error(cluster, task, tmp_path):
    jobs = _jobs(task, tmp_path, always=True)[:1]
    rows = [r for _, pack_rows in RayExecutor(retries=1).map(jobs, task) for r in pack_rows]
    assert len(rows) == len(jobs[0].specs) and {r["status"] for r in rows} == {"failed"}
    assert all("died" in r["error"].lower() or "crash" in r["error"].lower() for r in rows), rows[0]["error"]
    with Store(tmp_path / "r.db") as store:
        from topowire.train.spec import RunSpec

        spec = RunSpec.of(Arch("rnn-tanh"), task, CONFIG)
        rid = spec.run_id(task)
        store.ensure_run(rid, spec, POP[:3])
        store.write_results(rid, rows)
        assert store.done(rid) == set()  # failed is stored, and tried again by the next run
        assert set(store.results(rid)["error"]) == {rows[0]["error"]}
        resumed = train_population(POP[:3], Arch("rnn-tanh"), task, CONFIG, store=store)
        assert len(resumed) == 6 and (resumed["status"] == "ok").all()


def test_an_unreachable_address_and_a_missing_option_are_one_line(tmp_path):
    write_population(Population(tuple(POP[:2])), tmp_path / "p.jsonl")
    base = [sys.executable, "-m", "topowire.cli", "train", str(tmp_path / "p.jsonl"), "--db", str(tmp_path / "r.db")]
    for extra, message in ((["--workers", "2"], "error: --address and --workers go with --executor ray"),
                           (["--executor", "ray", "--address", "127.0.0.1:1"],
                            "error: cannot reach the Ray cluster at '127.0.0.1:1'")):
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=900)
        err = [line for line in done.stderr.strip().splitlines() if line.startswith("error")]
        assert done.returncode == 2 and len(err) == 1 and err[0].startswith(message), done.stderr
        assert not (tmp_path / "r.db").exists()


def _train_in_background(tmp_path, chunk: int, wide: int, **popen):
    """``topowire train --executor ray`` on 8 GRUs in a subprocess, returned once it has
    stored its first pack (its progress line says so), with the database path and the
    arguments. The next pack is then claimed and running (the driver submits it before it
    stores the last), and the ``wide`` last models have 400 neurons: packed last (packs are
    sorted by width), they keep the run going for many seconds after that event, however
    busy the machine."""
    pop = [er_graph(10 + i, 0.3, seed=i) for i in range(8 - wide)] + [er_graph(400, 0.05, seed=i) for i in range(wide)]
    write_population(Population(tuple(pop)), tmp_path / "p.jsonl")
    db = tmp_path / "r.db"
    args = ["train", str(tmp_path / "p.jsonl"), "--db", str(db), "--kind", "gru", "--epochs", "4", "--n-train",
            "1000", "--n-test", "32", "--chunk-size", str(chunk), "--executor", "ray", "--workers", "1"]
    proc = processes.topowire(args, **popen)
    processes.wait_for_line(proc, processes.trained(chunk))
    assert proc.poll() is None
    return proc, db, args


def test_a_killed_driver_resumes_and_finishes(tmp_path):
    first, db, args = _train_in_background(tmp_path, 1, wide=2, start_new_session=True)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the cluster it started
    first.communicate()
    second = processes.run(args)
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(db) as conn:
        counts = conn.execute("SELECT topology_id, replicate, count(*) FROM results GROUP BY 1, 2").fetchall()
    assert len(counts) == 8 and all(c == 1 for *_, c in counts)


def test_without_ray_the_executor_names_the_install_command(monkeypatch):
    from topowire.errors import ParameterError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ParameterError, match=r"pip install 'topowire\[ray\]'"):
        RayExecutor().connect()


def test_a_whole_study_trains_on_ray(cluster, tmp_path):
    from topowire.study import StudyConfig, run_study
    from topowire.topology import parse_recipe

    recipe = parse_recipe({"population": {"name": "tiny", "seed": 0}, "family": [
        {"kind": "er", "count": 4, "n": [10, 14], "p": [0.2, 0.4]},
        {"kind": "ba", "count": 4, "n": [10, 14], "m": [1, 3]}]})
    config = StudyConfig(train=TrainConfig(epochs=2, replicates=2, chunk_size=4), n_train=200, n_test=100,
                         n_estimators=10, export_onnx=False)
    summary = run_study(recipe, tmp_path / "s", config, log=lambda m: None, executor=RayExecutor(workers=2))
    assert summary["models"].startswith("16 ") and (tmp_path / "s" / "best_model.safetensors").is_file()
    with Store(tmp_path / "s" / "runs.db") as store:
        assert len(store.results()) == 16 and store.conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


def test_ctrl_c_cancels_and_leaves_whole_packs(tmp_path):
    proc, db, _ = _train_in_background(tmp_path, 2, wide=6)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=processes.HANG_GUARD)
    assert proc.returncode == 130 and "error: aborted" in out, out
    with sqlite3.connect(db) as conn:
        per_pack = conn.execute("SELECT count(*) FROM results").fetchone()[0]
    assert per_pack % 2 == 0 and per_pack < 8  # whole packs of 2, the rest cancelled


def test_a_local_cluster_runs_its_packs_at_the_driver_priority():
    """Ray renices its workers by 15 unless told otherwise: beside busy processes its packs
    starved. A local cluster the executor starts keeps the driver's niceness (here 3)."""
    done = subprocess.run([sys.executable, "-c", _NICENESS], capture_output=True, text=True,
                          preexec_fn=lambda: os.nice(3), timeout=processes.HANG_GUARD)
    assert done.returncode == 0, done.stderr
    driver, worker = map(int, done.stdout.split())
    assert driver == worker == os.nice(0) + 3


_NICENESS = """
import os
from topowire.train.executors import RayExecutor

class Job:
    specs = ()
    def run(self, task):
        return [os.nice(0)]

[(_, rows)] = RayExecutor(workers=1).map([Job()], task=None)
print(os.nice(0), rows[0])
"""
