import pytest
import torch

from topowire.compiler import Arch, Sequential2D, compile
from topowire.dynamics import last_inputs, truncated_forward, unroll
from topowire.errors import ParameterError
from topowire.topology import ba_graph, er_graph, ws_graph

GEN = torch.Generator().manual_seed(0)


def test_last_inputs_with_lengths():
    x = torch.arange(2 * 5 * 1, dtype=torch.float32).view(2, 5, 1)
    xk, lk = last_inputs(x, 3, torch.tensor([5, 2]))
    assert lk.tolist() == [3, 2]
    assert xk[0, :, 0].tolist() == [2.0, 3.0, 4.0]
    assert xk[1, :, 0].tolist() == [5.0, 6.0, 0.0]  # the 2 real steps, then padding
    xk, lk = last_inputs(x, 9)
    assert lk is None and torch.equal(xk, x)


@pytest.mark.parametrize("kind", ["rnn-tanh", "rnn-relu", "gru", "wcrnn"])
def test_truncation_equals_running_from_zero_on_the_suffix(kind):
    net = compile(ws_graph(14, 4, 0.3, seed=1), kind, orientation="both", inputs="all", outputs="all", d_in=3, seed=2)
    x = torch.randn(4, 12, 3, generator=GEN)
    lengths = torch.tensor([12, 9, 4, 7])
    out = truncated_forward(net, x, 5, lengths)
    for b in range(4):
        L = int(lengths[b])
        ref = net(x[b:b + 1, L - min(5, L):L])
        torch.testing.assert_close(out[b:b + 1], ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["rnn-tanh", "rnn-relu"])
@pytest.mark.parametrize("graph, orientation", [
    (ws_graph(16, 4, 0.3, seed=3), "both"), (ba_graph(12, 2, seed=4), "dag"), (er_graph(15, 0.3, seed=5), "both"),
])
@pytest.mark.parametrize("k", [1, 2, 6])
def test_unroll_equals_the_k_truncated_recurrent_model(kind, graph, orientation, k):
    net = compile(graph, kind, orientation=orientation, inputs="all", outputs="all", d_in=3, d_out=4, seed=6)
    x = torch.randn(5, 10, 3, generator=GEN)
    ff = unroll(net, k)
    assert isinstance(ff, Sequential2D) and ff.iterations == k + 1
    torch.testing.assert_close(ff(x[:, -k:].flatten(1)), truncated_forward(net, x, k), atol=1e-6, rtol=1e-5)


def test_unrolled_steps_share_the_recurrent_weights():
    net = compile(ws_graph(10, 4, 0.3, seed=0), "rnn-tanh", orientation="both", inputs="all", outputs="all",
                  d_in=2, seed=1)
    ff = unroll(net, 4)
    assert {id(p) for p in ff.parameters()} == {id(p) for p in net.parameters()}
    x = torch.randn(3, 4, 2, generator=GEN)
    ff(x.flatten(1)).sum().backward()
    # masked recurrent entries get no gradient through the unrolled network either
    assert not (net.w_hh.grad * (1 - net.mask)).any() and net.w_hh.grad.abs().sum() > 0
    with torch.no_grad():
        net.w_hh.mul_(2)
    torch.testing.assert_close(ff(x.flatten(1)), net(x), atol=1e-6, rtol=1e-5)


def test_unroll_refuses_gated_cells_and_bad_k():
    gru = compile(er_graph(8, 0.4, seed=0), "gru", orientation="both", inputs="all", outputs="all")
    with pytest.raises(ParameterError, match="rnn-tanh or rnn-relu"):
        unroll(gru, 3)
    tanh = compile(er_graph(8, 0.4, seed=0), Arch("rnn-tanh", orientation="both", inputs="all", outputs="all"))
    for bad in (0, -1, 2.5):
        with pytest.raises(ParameterError, match="k must be"):
            unroll(tanh, bad)
