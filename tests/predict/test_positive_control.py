"""A positive control: a trained study whose wiring matters at fixed size by construction.

An iterative map run K = 4 times carries the data K - 1 = 3 hops. Layered DAGs of 12 nodes
and 18 edges, two sources and two sinks each (so every model has the same 52 parameters),
put their sinks 2, 3, 4 or 5 hops from their sources: with 3 or 4 layers the readout sees
the data, with 5 or 6 it sees nothing and stays at chance. The beyond-size line must find
this (size held fixed, R² >= 0.5), and nothing once the results are shuffled across graphs.
"""

import numpy as np
import pytest
import torch

from topowire.compiler import Arch
from topowire.data import TASKS, Task, TaskSpec, make_task, register_task
from topowire.predict import cross_validate
from topowire.study import model_features, study_table
from topowire.topology import Topology
from topowire.train import TrainConfig, train_population

LAYERS = {3: [2, 8, 2], 4: [2, 4, 4, 2], 5: [2, 3, 2, 3, 2], 6: [2, 2, 2, 2, 2, 2]}


def _halfspace(spec, *, seed, n_train, n_test):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long()  # which half-space the first four inputs fall in
    return Task(spec.name, spec.objective, x[:n_train], y[:n_train], None, x[n_train:], y[n_train:], None, 8, 2)


@pytest.fixture
def halfspace():
    register_task(TaskSpec("control-halfspace", "the sign of a sum", "classification", False, _halfspace,
                           chance=0.5, sizes=(1000, 400)))
    try:
        yield make_task("control-halfspace", seed=0)
    finally:
        TASKS.pop("control-halfspace")


def _layered(sizes: list[int], n_edges: int, rng: np.random.Generator) -> Topology:
    """A DAG whose nodes, numbered layer by layer, have edges only between consecutive layers:
    every node but the first layer's has an input, every node but the last layer's an output."""
    starts = np.cumsum([0, *sizes])
    layers = [list(range(starts[i], starts[i + 1])) for i in range(len(sizes))]
    edges = set()
    for a, b in zip(layers, layers[1:]):
        edges.update((int(rng.choice(a)), v) for v in b)
        edges.update((u, int(rng.choice(b))) for u in a if not any(e[0] == u for e in edges))
    free = [(u, v) for a, b in zip(layers, layers[1:]) for u in a for v in b if (u, v) not in edges]
    edges.update(free[i] for i in rng.permutation(len(free))[: n_edges - len(edges)])
    return Topology(sum(sizes), np.array(sorted(edges)), False, family=f"layers-{len(sizes)}",
                    params={"layers": len(sizes)})


def test_the_instrument_sees_a_wiring_effect_built_in_at_fixed_size_and_none_when_shuffled(halfspace):
    rng = np.random.default_rng(0)
    pop = [_layered(LAYERS[n_layers], 18, rng) for n_layers in LAYERS for _ in range(10)]
    arch = Arch("iterative", iterations=4, activation="tanh")
    results = train_population(pop, arch, halfspace, TrainConfig(epochs=5, replicates=2, lr=0.02))
    by_id = {t.id: t for t in pop}
    results["family"] = results["topology_id"].map(lambda i: by_id[i].family)
    accuracy = results.groupby("family")["test_acc"].mean()
    assert accuracy["layers-3"] > 0.95 and accuracy["layers-4"] > 0.95  # the data reach the readout
    assert abs(accuracy["layers-5"] - 0.5) < 0.02 and abs(accuracy["layers-6"] - 0.5) < 0.02  # they do not
    features = model_features(pop, None, arch.replace(d_in=8, d_out=2))
    assert features["params"].nunique() == 1

    cv = cross_validate(study_table(results, features), "test_acc", list(features.columns), groups=None,
                        n_estimators=60, importances=False)
    head, t = cv.headline(), cv.table().set_index("model")
    assert cv.size["matched"] and head["size"].startswith("held fixed by design")
    assert "CANNOT DETECT" not in head and t.loc["beyond-size", "r2"] >= 0.5

    ids = features.index.to_numpy()
    shuffled = dict(zip(ids, np.random.default_rng(1).permutation(ids)))
    control = study_table(results.assign(topology_id=results["topology_id"].map(shuffled)), features)
    t = cross_validate(control, "test_acc", list(features.columns), groups=None, n_estimators=60,
                       importances=False, power=False).table().set_index("model")
    assert abs(t.loc["beyond-size", "r2"]) <= max(t.loc["beyond-size", "r2_fold_sd"], 0.1)
