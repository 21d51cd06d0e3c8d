"""The weakly coupled residual cell (arXiv 2307.14823): h <- R h + gamma tanh(W h + U x + b)."""

import math

import numpy as np
import pytest
import torch

from topowire.compiler import Arch, compile
from topowire.compiler.compile import pack
from topowire.compiler.targets.recurrent import residual_matrix, residual_vectors
from topowire.errors import ParameterError
from topowire.topology import er_graph, ws_graph

ARCH = dict(kind="wcrnn", orientation="both", inputs="all", outputs="all", d_in=3, d_out=2)


def _reference(net, x):
    """Step-by-step evaluation with the dense R matrix and the module's own weights."""
    r = residual_matrix(net.wiring.n_neurons, net.arch, net.seed)
    w_hh = net.w_hh.detach() * net.mask
    w_ih = net.w_ih.detach() * net.in_mask[:, None]
    h = torch.zeros(x.shape[0], net.wiring.n_neurons)
    for t in range(x.shape[1]):
        pre = x[:, t] @ w_ih.T + net.b_ih.detach() + h @ w_hh.T + net.b_hh.detach()
        h = h @ r.T + net.arch.gamma * torch.tanh(pre)
    o = net.out_mask
    return h @ (net.readout.detach() * o).T + net.readout_bias.detach()


@pytest.mark.parametrize("residual, extra", [
    ("homogeneous", {"r": 0.95}), ("rotational", {"r": 0.9, "phi": 2 * math.pi / 28}),
    ("heterogeneous", {"r": 0.9, "r_spread": 0.08}),
])
@pytest.mark.parametrize("n", [10, 11])  # an odd last neuron has no rotation partner
def test_wcrnn_matches_dense_reference(residual, extra, n):
    net = compile(ws_graph(n, 4, 0.3, seed=1), Arch(residual=residual, gamma=0.3, **extra, **ARCH), seed=5)
    x = torch.randn(4, 12, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net(x), _reference(net, x), atol=1e-6, rtol=1e-5)


def test_residual_matrices():
    n = 9
    a = Arch(residual="rotational", r=0.8, phi=0.3, **ARCH)
    r = residual_matrix(n, a, 0).numpy()
    block = 0.8 * np.array([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]])
    np.testing.assert_allclose(r[2:4, 2:4], block, rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(r)), 0.8, rtol=1e-6)
    assert r[8, 8] == pytest.approx(0.8) and np.count_nonzero(r[8]) == 1
    np.testing.assert_array_equal(residual_matrix(n, a.replace(residual="homogeneous"), 0).numpy(),
                                  np.float32(0.8) * np.eye(n, dtype=np.float32))
    het = a.replace(residual="heterogeneous", r=0.9, r_spread=0.1)
    d1, p1 = residual_vectors(200, het, 7)
    assert torch.equal(d1, residual_vectors(200, het, 7)[0]) and not torch.equal(d1, residual_vectors(200, het, 8)[0])
    assert float(d1.min()) >= 0.8 and float(d1.max()) <= 1.0 and float(d1.std()) > 0.04
    assert not p1.any()


def test_wcrnn_packs_like_standalone_models():
    a = Arch(residual="heterogeneous", r=0.9, r_spread=0.05, **ARCH)
    graphs = [ws_graph(12, 4, 0.2, seed=1), er_graph(7, 0.4, seed=2), er_graph(9, 0.3, seed=3)]
    pk = pack(graphs, a, seeds=[1, 2, 3])
    x = torch.randn(5, 8, 3)
    out = pk(x)
    for p, (g, s) in enumerate(zip(graphs, [1, 2, 3])):
        torch.testing.assert_close(out[p], compile(g, a, seed=s)(x), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(pk.unpack(p)(x), out[p], atol=1e-6, rtol=1e-5)
    # R is fixed: not a parameter, and zero on padding neurons
    assert "res_diag" not in dict(pk.named_parameters())
    assert not pk.res_diag[1, 7:].any()


def test_wcrnn_bad_parameters():
    with pytest.raises(ParameterError, match="residual"):
        Arch(kind="wcrnn", residual="spiral")
    with pytest.raises(ParameterError, match="r_spread"):
        Arch(kind="wcrnn", r=0.5, r_spread=0.6)
    with pytest.raises(ParameterError, match="gamma"):
        Arch(kind="wcrnn", gamma=float("nan"))
    with pytest.raises(ParameterError, match="cell"):
        Arch(kind="layered", cell="wcrnn")
