import math

import numpy as np
import pytest
import torch

from topowire.compiler import Arch, compile
from topowire.compiler.compile import pack
from topowire.compiler.targets.recurrent import residual_matrix
from topowire.dynamics import lyapunov_spectrum, max_lyapunov, project_stable, spectral_norms
from topowire.errors import ParameterError
from topowire.topology import er_graph, ws_graph

X = torch.randn(3, 400, 3, generator=torch.Generator().manual_seed(0))
ROLES = dict(orientation="both", inputs="all", outputs="all", d_in=3)


@pytest.mark.parametrize("residual, extra", [
    ("homogeneous", {"r": 0.9}), ("rotational", {"r": 0.95, "phi": 2 * math.pi / 28}),
    ("heterogeneous", {"r": 0.85, "r_spread": 0.1}),
])
def test_weakly_coupled_exponents_approach_log_eig_r(residual, extra):
    arch = Arch("wcrnn", residual=residual, gamma=0.02, **extra, **ROLES)
    net = compile(ws_graph(12, 4, 0.3, seed=1), arch, seed=3)
    spectrum = lyapunov_spectrum(net, X).mean(0).numpy()
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(residual_matrix(12, arch, 3).numpy()))))[::-1]
    np.testing.assert_allclose(spectrum, expected, atol=0.05)


def test_a_contracting_tanh_rnn_has_only_negative_exponents():
    net = compile(er_graph(20, 0.5, seed=2), "rnn-tanh", seed=1, **ROLES)
    with torch.no_grad():
        net.w_hh.mul_(4)
    project_stable(net, 0.95)
    assert float(spectral_norms(net).max()) <= 0.95 + 1e-6
    spectrum = lyapunov_spectrum(net, X[:, :200])
    assert spectrum.shape == (3, 20)
    assert float(spectrum.max()) < 0 and float(spectrum.max()) <= math.log(0.95) + 1e-6
    # sorted, and the maximal exponent is the first
    assert torch.all(spectrum[:, :-1] >= spectrum[:, 1:])
    torch.testing.assert_close(max_lyapunov(net, X[:, :200]), lyapunov_spectrum(net, X[:, :200], 1)[:, 0].mean())


def test_an_expanding_tanh_rnn_has_a_positive_exponent():
    net = compile(er_graph(30, 0.6, seed=3), "rnn-tanh", seed=1, **ROLES)
    with torch.no_grad():
        net.w_hh.mul_(8)
        net.w_ih.mul_(0.1)
    assert float(max_lyapunov(net, X[:, :300], warmup=50)) > 0


@pytest.mark.parametrize("kind", ["rnn-relu", "lstm", "gru", "wcrnn"])
def test_each_model_of_a_pack_gets_its_own_spectrum(kind):
    graphs = [ws_graph(10, 4, 0.3, seed=4), er_graph(6, 0.5, seed=5), er_graph(8, 0.4, seed=6)]
    pk = pack(graphs, Arch(kind, **ROLES), seeds=[1, 2, 3])
    spectrum = lyapunov_spectrum(pk, X[:, :60], 4)
    assert spectrum.shape == (3, 3, 4)
    for p in range(3):
        alone = lyapunov_spectrum(pk.unpack(p), X[:, :60], 4)
        torch.testing.assert_close(spectrum[p], alone, atol=1e-8, rtol=1e-8)


def test_singular_steps_do_not_make_the_spectrum_hang_on_rounding():
    # dead ReLUs make many steps' Jacobians singular; an annihilated direction is continued
    # deterministically, so a different padding (a larger model in the pack) and inputs off
    # by rounding give the same full spectrum (plain QR: differences up to 0.5)
    graphs = [er_graph(6, 0.5, seed=5), er_graph(8, 0.4, seed=6)]
    arch = Arch("rnn-relu", **ROLES)
    small = lyapunov_spectrum(pack(graphs, arch, seeds=[2, 3]), X[:, :60], 4)
    wide = pack([*graphs, ws_graph(16, 4, 0.3, seed=4)], arch, seeds=[2, 3, 1])
    moved = lyapunov_spectrum(wide, X[:, :60] * (1 + 1e-13), 4)
    assert float(small[..., -1].max()) < -5  # directions are being annihilated
    torch.testing.assert_close(moved[:2], small, atol=1e-6, rtol=1e-6)


def test_lstm_state_is_h_and_c_and_lengths_are_respected():
    net = compile(er_graph(6, 0.5, seed=5), "lstm", seed=1, **ROLES)
    assert lyapunov_spectrum(net, X[:, :30]).shape == (3, 12)
    lengths = torch.tensor([30, 12, 20])
    full = lyapunov_spectrum(net, X[:, :30], 2, lengths=lengths)
    torch.testing.assert_close(full[1], lyapunov_spectrum(net, X[1:2, :12], 2)[0])
    with pytest.raises(ParameterError, match="k must be"):
        lyapunov_spectrum(net, X[:, :30], 13)
    with pytest.raises(ParameterError, match="inputs must be"):
        lyapunov_spectrum(net, X[:, :30, :2])
    with pytest.raises(ParameterError, match="recurrent"):
        lyapunov_spectrum(compile(er_graph(6, 0.5, seed=5), "iterative"), X)
