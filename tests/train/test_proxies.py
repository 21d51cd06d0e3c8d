import numpy as np
import pytest
import torch

from topowire.compiler import Arch, compile
from topowire.data import make_task
from topowire.features import feature_table, list_features
from topowire.seeds import init_seed
from topowire.topology import ba_graph, er_graph, ws_graph
from topowire.train import TrainConfig, train_population
from topowire.train.losses import per_model_loss
from topowire.train.proxies import INIT_PROXIES, early_proxies, init_proxies

POP = [er_graph(10, 0.3, seed=1), ws_graph(12, 4, 0.3, seed=2), ba_graph(9, 2, seed=3), er_graph(14, 0.2, seed=4)]


@pytest.fixture(scope="module")
def task():
    return make_task("reber", n_train=128, n_test=64, seed=0)


def test_init_proxies_are_those_of_each_model_alone(task):
    arch = Arch("gru", d_in=task.d_in, d_out=task.d_out)
    packed = init_proxies(POP, arch, task, seed=5)
    assert list(packed.columns) == list(INIT_PROXIES) and list(packed.index) == [t.id for t in POP]
    for t in POP:
        net = compile(t, arch, seed=init_seed(5, t.id, 0))
        x, y, lengths = task.x_train[:64], task.y_train[:64], task.len_train[:64]
        loss = per_model_loss(net(x[:, :int(lengths.max())], lengths)[None], y, task.objective)[0]
        loss.backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in net.parameters()))
        np.testing.assert_allclose(packed.loc[t.id], [float(loss), float(norm)], rtol=1e-5)
    assert {"init_loss", "init_grad_norm"} <= set(list_features()["name"])
    np.testing.assert_allclose(feature_table(POP, ["init"], arch=arch, task=task, seed=5), packed)


def test_early_proxies_at_the_whole_budget_are_the_trained_results(task):
    arch = Arch("rnn-tanh", d_in=task.d_in, d_out=task.d_out)
    config = TrainConfig(epochs=2, batch_size=32, seed=3)
    early = early_proxies(POP, arch, task, config, 1.0)
    trained = train_population(POP, arch, task, config).set_index("topology_id")
    np.testing.assert_allclose(early["early1_acc"], trained.loc[early.index, "test_acc"], rtol=1e-6)
    half = early_proxies(POP, arch, task, config, 0.25)  # 1 pass over the first half
    assert list(half.columns) == ["early0.25_loss", "early0.25_acc"]
    assert not np.allclose(half["early0.25_loss"], early["early1_loss"])
    with pytest.raises(ValueError, match="fraction"):
        early_proxies(POP, arch, task, config, 0)
