import numpy as np
import pytest
import torch
from torch import nn

from topowire.compiler import Arch, Wiring, compile, wire
from topowire.compiler.cells import CELLS
from topowire.topology import ba_graph, er_graph, mlp_graph, ws_graph

torch.set_default_dtype(torch.float32)
TARGETS = ["iterative", "rnn-tanh", "rnn-relu", "lstm", "gru", "wcrnn"]


def _feed_forward(net, x):
    """Node-by-node evaluation of the DAG network with the module's own weights."""
    w, u, b = net.weight.detach(), net.w_in.detach(), net.bias.detach()
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[net.arch.activation]
    wiring = net.wiring
    h = torch.zeros(x.shape[0], wiring.n_neurons)
    inputs = set(wiring.inputs.tolist())
    for v in np.argsort(wiring.layer, kind="stable"):
        pre = b[v].expand(x.shape[0]).clone()
        for u_ in wiring.edges[wiring.edges[:, 1] == v, 0]:
            pre = pre + w[v, u_] * h[:, u_]
        if v in inputs:
            pre = pre + x @ u[v]
        h[:, v] = act(pre)
    out = torch.tensor(wiring.outputs)
    return h[:, out] @ net.readout.detach()[:, out].T + net.readout_bias.detach()


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("graph, inputs", [
    (ws_graph(24, 4, 0.3, seed=0), "sources"), (ba_graph(20, 2, seed=1), "all"),
    (er_graph(25, 0.15, seed=2), 5), (mlp_graph([4, 6, 3]), "sources"),
])
def test_iterative_equals_explicit_feed_forward(graph, inputs, activation):
    orientation = "as-is" if graph.directed else "dag"
    net = compile(graph, "iterative", d_in=4, d_out=3, seed=3, inputs=inputs,
                  orientation=orientation, activation=activation)
    assert net.iterations == net.wiring.depth + 1
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net(x), _feed_forward(net, x), rtol=1e-5, atol=1e-6)
    # further Jacobi iterations leave a DAG's fixed point unchanged
    longer = compile(graph, "iterative", d_in=4, d_out=3, seed=3, inputs=inputs, orientation=orientation,
                     activation=activation, iterations=net.iterations + 3)
    torch.testing.assert_close(longer(x), net(x), rtol=1e-6, atol=1e-6)


def _full_wiring(n):
    u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return Wiring(n, np.stack([u.ravel(), v.ravel()], 1), np.arange(n), np.arange(n), orientation="as-is")


TORCH_CELLS = {
    "rnn-tanh": lambda d, n: nn.RNN(d, n, nonlinearity="tanh", batch_first=True),
    "rnn-relu": lambda d, n: nn.RNN(d, n, nonlinearity="relu", batch_first=True),
    "lstm": lambda d, n: nn.LSTM(d, n, batch_first=True),
    "gru": lambda d, n: nn.GRU(d, n, batch_first=True),
}


@pytest.mark.parametrize("kind", list(TORCH_CELLS))
def test_full_mask_reproduces_torch(kind):
    n, d = 12, 5
    torch.manual_seed(0)  # only for torch's own reference module
    ref = TORCH_CELLS[kind](d, n)
    net = compile(_full_wiring(n), Arch(kind, d_in=d, d_out=3))
    with torch.no_grad():
        net.w_ih.copy_(ref.weight_ih_l0)
        net.w_hh.copy_(ref.weight_hh_l0)
        net.b_ih.copy_(ref.bias_ih_l0)
        net.b_hh.copy_(ref.bias_hh_l0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 9, d, generator=g)
    expected, _ = ref(x)
    torch.testing.assert_close(net.hidden_states(x), expected, rtol=1e-5, atol=1e-5)
    # variable lengths: the state stops at the last real step (compare with packed sequences)
    lengths = torch.tensor([9, 3, 7, 1, 5, 9])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, hn = ref(packed)
    h_last = (hn[0] if kind == "lstm" else hn)[0]
    states = net.hidden_states(x, lengths)
    torch.testing.assert_close(states[:, -1], h_last, rtol=1e-5, atol=1e-5)
    out = h_last @ net.readout.detach().T + net.readout_bias.detach()
    torch.testing.assert_close(net(x, lengths), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_mask_is_tiled_per_gate_as_whole_blocks(kind):
    t = ws_graph(16, 4, 0.5, seed=4)
    net = compile(t, kind, orientation="both", inputs="all", outputs="all")
    mask = torch.from_numpy(net.wiring.mask())
    n, g = 16, CELLS[kind].gates
    eff = net.effective_weight()
    out = net(torch.randn(3, 5, 7)).sum()
    out.backward()
    for gate in range(g):
        rows = slice(gate * n, (gate + 1) * n)
        assert torch.equal(eff[rows] != 0, mask.bool()), gate
        assert torch.equal(net.w_hh.grad[rows] != 0, mask.bool()), gate
    # the prior-work bug: row interleaving puts other neurons' connectivity on each gate row
    interleaved = torch.from_numpy(np.repeat(mask.numpy(), g, 0))
    assert not torch.equal(interleaved, mask.repeat(g, 1))


def _inputs(kind, gen):
    return torch.randn(4, 5) if kind == "iterative" else torch.randn(4, 6, 5, generator=gen)


@pytest.mark.parametrize("kind", TARGETS)
def test_masked_weights_zero_at_init_zero_gradient_and_after_adam(kind):
    t = er_graph(20, 0.2, seed=5)
    net = compile(t, kind, d_in=5, d_out=3, seed=2)
    masked = {name: getattr(net, name).detach() == 0 for name in ("w_hh", "weight", "w_ih", "w_in", "readout")
              if hasattr(net, name)}
    big_mask = net.effective_weight() == 0
    assert big_mask.any()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for step in range(20):
        opt.zero_grad()
        loss = net(_inputs(kind, gen)).pow(2).mean()
        loss.backward()
        if step == 0:
            for name, zero in masked.items():
                grad = getattr(net, name).grad
                assert torch.all(grad[zero & ~_structural_nonzero(net, name)] == 0), name
        opt.step()
    w = net.w_hh if net.arch.recurrent else net.weight
    assert torch.all(w.detach()[big_mask] == 0)
    assert (w.detach() != 0).sum() > 0


def _structural_nonzero(net, name):
    """Entries allowed by the mask (which may still happen to be exactly zero)."""
    from topowire.compiler.functional import masked_recurrent_weights

    ones = torch.ones_like(getattr(net, name))
    if name == "w_hh":
        return masked_recurrent_weights(ones[None], net.mask[None])[0] != 0
    if name == "weight":
        return net.mask != 0
    if name == "w_ih":
        n = net.wiring.n_neurons
        return masked_recurrent_weights(ones[None], net.in_mask[None, :, None].expand(1, n, ones.shape[1]))[0] != 0
    if name == "w_in":
        return (ones * net.in_mask[:, None]) != 0
    return (ones * net.out_mask[None, :]) != 0


@pytest.mark.parametrize("kind", TARGETS)
def test_no_path_means_zero_jacobian(kind):
    full = wire(er_graph(30, 0.1, seed=7), "dag", "sources", "sinks")
    # read out one sink only: the other sinks and their exclusive ancestors have no path to it
    w = Wiring(30, full.edges, full.inputs, full.outputs[-1:], orientation="dag", layer=full.layer)
    net = compile(w, Arch(kind, d_in=5, d_out=3, **({"activation": "tanh"} if kind == "iterative" else {})), seed=0)
    no_path = _cannot_reach_outputs(w)
    assert no_path.any() and (~no_path).any()
    assert w.n_off_path >= no_path.sum()
    bias = net.b_hh if net.arch.recurrent else net.bias
    out = net(_inputs(kind, torch.Generator().manual_seed(1)))
    grad = torch.autograd.grad(out[:, 0].sum(), bias)[0]
    per_neuron = grad.view(net.arch.gates, 30).abs().sum(0)
    assert torch.all(per_neuron[torch.from_numpy(no_path)] == 0)
    assert per_neuron[torch.from_numpy(~no_path)].sum() > 0


def _cannot_reach_outputs(w):
    import networkx as nx

    g = nx.DiGraph(w.edges.tolist())
    g.add_nodes_from(range(w.n_neurons))
    ok = set(w.outputs.tolist())
    for o in w.outputs:
        ok |= nx.ancestors(g, int(o))
    return ~np.isin(np.arange(w.n_neurons), sorted(ok))


def test_extra_repr_and_counts():
    net = compile(mlp_graph([3, 4, 2]), "gru", orientation="as-is", inputs="sources", outputs="sinks", d_in=7, d_out=2)
    text = repr(net)
    assert "n_neurons=9" in text and "n_edges=20" in text and "params=" in text
    c = net.parameter_counts()
    assert c["graph"] == 3 * 20
    assert c["interface"] == 3 * 3 * 7 + 2 * 2
    assert c["total"] == c["graph"] + c["interface"] + c["bias"]


def test_same_seed_same_model_and_no_global_state():
    t = ba_graph(20, 2, seed=0)
    a = compile(t, "lstm", seed=4)
    torch.manual_seed(123)
    b = compile(t, "lstm", seed=4)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), na
    c = compile(t, "lstm", seed=5)
    assert not torch.equal(a.w_hh, c.w_hh)
