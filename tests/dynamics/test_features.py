import math

import pytest
import torch

from topowire.compiler import Arch, wire
from topowire.compiler.pack import PackedPopulation
from topowire.data import make_task
from topowire.dynamics import lyapunov_spectrum
from topowire.dynamics.features import DYNAMICS_FEATURES, dynamics_features, dynamics_table
from topowire.errors import ParameterError
from topowire.seeds import init_seed
from topowire.topology import ba_graph, er_graph, ws_graph

ARCH = Arch("rnn-tanh", orientation="both", inputs="all", outputs="all")
TOPOS = [ws_graph(12, 4, 0.3, seed=1), er_graph(9, 0.4, seed=2), ba_graph(10, 2, seed=3)]


@pytest.fixture(scope="module")
def reber():
    return make_task("reber", n_train=32, n_test=8, seed=0)


def test_table_matches_the_trained_models_at_init(reber):
    table = dynamics_table(TOPOS, ARCH, reber, seed=5, n_sequences=4, chunk=2)
    assert list(table.columns) == list(DYNAMICS_FEATURES) and list(table.index) == [t.id for t in TOPOS]
    arch = ARCH.replace(d_in=reber.d_in, d_out=reber.d_out)
    t = TOPOS[1]
    # the network the trainer would draw for replicate 0 under root seed 5
    pk = PackedPopulation([wire(t, "both", "all", "all", seed=5)], arch, [init_seed(5, t.id, 0)])
    net = pk.unpack(0)
    w = (net.w_hh * net.mask).detach().double()
    assert table.loc[t.id, "dyn_spectral_norm"] == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2)))
    assert table.loc[t.id, "dyn_spectral_radius"] == pytest.approx(float(torch.linalg.eigvals(w).abs().max()))
    x, lengths = reber.x_train[:4], reber.len_train[:4]
    x = x[:, :int(lengths.max())]
    expected = lyapunov_spectrum(net, x, 1, lengths=lengths)[:, 0].mean()
    assert table.loc[t.id, "dyn_max_lyapunov"] == pytest.approx(float(expected))
    # the radius never exceeds the norm; a tanh net at this init contracts
    assert (table["dyn_spectral_radius"] <= table["dyn_spectral_norm"] + 1e-9).all()
    assert (table["dyn_max_lyapunov"] < 0).all()


def test_gated_cells_take_the_largest_gate_block(reber):
    arch = Arch("gru", orientation="both", inputs="all", outputs="all", d_in=reber.d_in, d_out=reber.d_out)
    pk = PackedPopulation([wire(TOPOS[0], "both", "all", "all")], arch, [1])
    f = dynamics_features(pk, reber.x_train[:2, :10])
    w = (pk.w_hh[0].detach().view(3, 12, 12) * pk.mask[0]).double()
    assert f.loc[0, "dyn_spectral_norm"] == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2).max()))
    assert math.isfinite(f.loc[0, "dyn_max_lyapunov"])


def test_bad_inputs(reber):
    with pytest.raises(ParameterError, match="recurrent"):
        dynamics_table(TOPOS, Arch("iterative"), reber)
    with pytest.raises(ParameterError, match="sequence task"):
        dynamics_table(TOPOS, ARCH, make_task("mnist", n_train=10, n_test=10))
