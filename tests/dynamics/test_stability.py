import pytest
import torch

from topowire.compiler import Arch, compile, wire
from topowire.compiler.pack import PackedPopulation
from topowire.data import make_task
from topowire.dynamics import project_stable, spectral_norms
from topowire.errors import ParameterError
from topowire.topology import ba_graph, er_graph, ws_graph
from topowire.train import TrainConfig, train_pack

GRAPHS = [ws_graph(20, 8, 0.3, seed=1), er_graph(16, 0.6, seed=2), ba_graph(18, 4, seed=3)]


@pytest.fixture(scope="module")
def reber():
    return make_task("reber", n_train=256, n_test=64, seed=0)


def _pack(kind, task):
    arch = Arch(kind, orientation="both", inputs="all", outputs="all", d_in=task.d_in, d_out=task.d_out)
    return PackedPopulation([wire(g, "both", "all", "all") for g in GRAPHS], arch, [1, 2, 3])


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru", "wcrnn"])
def test_trained_models_keep_the_bound_and_their_masks(kind, reber):
    lam = 0.5
    free, stable = _pack(kind, reber), _pack(kind, reber)
    config = TrainConfig(epochs=2, batch_size=32, lr=2e-2)
    train_pack(free, reber, config)
    train_pack(stable, reber, config.replace(stability=lam))
    assert float(spectral_norms(free).max()) > lam + 0.05  # the bound is not vacuous here
    norms = spectral_norms(stable)
    assert norms.shape == (3, stable.arch.gates)
    assert float(norms.max()) <= lam + 1e-6
    # rescaling keeps the topology: masked entries are still exactly zero
    g = stable.arch.gates
    assert not (stable.w_hh.detach().view(3, g, stable.n_max, stable.n_max) * (1 - stable.mask[:, None])).any()


def test_projection_acts_per_model_and_per_gate():
    net = compile(ws_graph(30, 10, 0.2, seed=0), "lstm", orientation="both", inputs="all", outputs="all", seed=4)
    with torch.no_grad():
        net.w_hh[:30] *= 10  # only the input gate is large
    before = spectral_norms(net)[0]
    project_stable(net, 0.9)
    after = spectral_norms(net)[0]
    assert after[0] == pytest.approx(0.9, rel=1e-5)
    torch.testing.assert_close(after[1:], torch.minimum(before[1:], torch.tensor(0.9)))


def test_only_the_selected_models_move(reber):
    pk = _pack("rnn-tanh", reber)
    with torch.no_grad():
        pk.w_hh.mul_(5)
    before = spectral_norms(pk)
    project_stable(pk, 0.8, models=torch.tensor([True, False, True]))
    after = spectral_norms(pk)
    assert float(after[[0, 2]].max()) <= 0.8 + 1e-6 and after[1] == before[1]


def test_bad_stability_values():
    for bad in (0, -0.5, 1.5, "0.9", True):
        with pytest.raises(ParameterError, match="stability"):
            TrainConfig(stability=bad)
    with pytest.raises(ParameterError, match="recurrent"):
        project_stable(compile(er_graph(8, 0.3, seed=0), "iterative"), 0.9)
