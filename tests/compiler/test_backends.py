import pytest
import torch

from topowire.compiler import Arch, compile
from topowire.compiler.backends import (
    AUTO_MAX_DENSITY,
    AUTO_MIN_NEURONS,
    resolve_backend,
    torch_sparse_available,
)
from topowire.compiler.compile import pack
from topowire.compiler.export import load, save
from topowire.errors import ParameterError
from topowire.topology import er_graph, ws_graph

KINDS = ["iterative", "rnn-tanh", "rnn-relu", "lstm", "gru", "wcrnn"]
SPARSE = ["sparse"] + (["torch_sparse"] if torch_sparse_available() else [])
GRAPH = ws_graph(40, 4, 0.3, seed=0)


def _x(kind):
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 5, generator=g) if kind == "iterative" else torch.randn(4, 7, 5, generator=g)


def _pair(kind, backend):
    options = {"activation": "tanh", "iterations": 4} if kind == "iterative" else {}
    arch = Arch(kind, d_in=5, d_out=3, orientation="both", inputs=6, outputs="all", **options)
    dense = compile(GRAPH, arch, seed=1)
    sparse = compile(GRAPH, arch.replace(backend=backend), seed=1)
    with torch.no_grad():
        for name, p in dense.named_parameters():
            if name in ("w_hh", "weight"):
                sparse.graph.from_dense(dense.effective_weight())
            else:
                sparse.get_parameter(name).copy_(p)
    return dense, sparse


@pytest.mark.parametrize("backend", SPARSE)
@pytest.mark.parametrize("kind", KINDS)
def test_sparse_backends_match_dense_outputs_and_gradients(kind, backend):
    dense, sparse = _pair(kind, backend)
    assert sparse.backend == backend and "mask" not in dict(sparse.named_buffers())
    torch.testing.assert_close(sparse.effective_weight(), dense.effective_weight())
    x = _x(kind)
    yd, ys = dense(x), sparse(x)
    torch.testing.assert_close(ys, yd, rtol=1e-5, atol=1e-5)
    yd.pow(2).sum().backward()
    ys.pow(2).sum().backward()
    big = dense.w_hh if dense.arch.recurrent else dense.weight
    torch.testing.assert_close(sparse.graph.values.grad, big.grad[sparse.graph.row, sparse.graph.col],
                               rtol=1e-5, atol=1e-5)
    for name, p in dense.named_parameters():
        if name not in ("w_hh", "weight"):
            torch.testing.assert_close(sparse.get_parameter(name).grad, p.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", SPARSE)
def test_sparse_model_stores_edges_not_neurons_squared(backend, tmp_path):
    big = er_graph(3000, 0.001, seed=0)
    net = compile(big, Arch("gru", inputs="all", outputs="all", orientation="both", backend=backend))
    largest = max(t.numel() for t in net.state_dict().values())
    assert largest < 3000 * 3000 / 100  # no [N, N] tensor anywhere
    assert net.graph.values.numel() == 3 * 2 * big.n_edges
    save(net, tmp_path / "m.safetensors")
    x = torch.randn(2, 3, 7)
    assert torch.equal(load(tmp_path / "m.safetensors")(x), net(x))


def test_auto_follows_the_measured_crossover():
    assert resolve_backend("auto", 256, 256 * 256 // 10) == "dense"
    assert resolve_backend("auto", AUTO_MIN_NEURONS, int(AUTO_MIN_NEURONS**2 * AUTO_MAX_DENSITY)) in ("sparse", "torch_sparse")
    assert resolve_backend("auto", AUTO_MIN_NEURONS, AUTO_MIN_NEURONS**2 // 10) == "dense"
    assert compile(GRAPH, "gru", backend="auto").backend == "dense"


def test_bad_backends():
    with pytest.raises(ParameterError, match="unknown backend 'cusparse'"):
        Arch("gru", backend="cusparse")
    with pytest.raises(ParameterError, match="packed populations use the dense backend"):
        pack([GRAPH], "gru", backend="sparse")
