"""The sequence-level cells (fused kernels, own backward) against the torch reference path."""

import pytest
import torch

from topowire.compiler import Arch, kernels, sequence
from topowire.compiler.compile import pack
from topowire.compiler.targets import recurrent
from topowire.topology import er_graph, ws_graph

pytestmark = pytest.mark.skipif(kernels.library() is None, reason="the kernels need a C compiler")


def _pack(kind, d_in=5, **extra):
    graphs = [ws_graph(12, 4, 0.3, seed=s) for s in range(3)] + [er_graph(9, 0.3, seed=s) for s in range(2)]
    packed = pack(graphs, Arch(kind, d_in=d_in, d_out=3, **extra), seeds=range(5))
    with torch.no_grad():  # pruned connections: a recurrent edge and an input in every model
        packed.ih_mask[:, 0, 0] = 0
        packed.mask[:, 1, :] = 0
    return packed


def _inputs(one_hot, seed=0, b=6, t=9, d=5):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([9, 3, 1, 9, 6, 0])  # one sequence ends at once, one is empty
    if one_hot:
        x = torch.nn.functional.one_hot(torch.randint(0, d, (b, t), generator=gen), d).float()
    else:
        x = torch.randn(b, t, d, generator=gen)
    x[torch.arange(t)[None, :] >= lengths[:, None]] = 0
    return x, lengths


def _run(packed, x, lengths, on, states=False):
    packed.zero_grad()
    with kernels.use_kernels(on):
        out = packed(x, lengths, all_steps=states)
    out.square().sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in packed.named_parameters()}


@pytest.mark.parametrize("kind", list(sequence.KINDS))
@pytest.mark.parametrize("one_hot", [True, False])
@pytest.mark.parametrize("with_lengths", [True, False])
def test_values_and_gradients_equal_the_torch_path(kind, one_hot, with_lengths):
    packed = _pack(kind)
    x, lengths = _inputs(one_hot)
    lengths = lengths if with_lengths else None
    want, want_grads = _run(packed, x, lengths, False)
    got, got_grads = _run(packed, x, lengths, True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        assert float(w.abs().sum()) > 0, name
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)
    mask = packed.mask.repeat(1, packed.w_hh.shape[1] // packed.mask.shape[1], 1)  # per gate, as W_hh
    assert not got_grads["w_hh"][mask == 0].any()  # a masked or pruned weight gets no gradient


@pytest.mark.parametrize("kind", list(sequence.KINDS))
@pytest.mark.parametrize("n", [16, 21, 37])
def test_rows_of_whole_vectors_and_a_moved_last_vector_equal_the_torch_path(kind, n):
    # a row of n units runs as vectors of 16 (8 or 4 on smaller CPUs), the last moved back to
    # end at n: its units already done must not be added twice into dx or b_hh's gradient
    graphs = [ws_graph(n, 4, 0.3, seed=s) for s in range(2)]
    packed = pack(graphs, Arch(kind, d_in=5, d_out=3), seeds=range(2))
    x, lengths = _inputs(True, seed=n)
    want, want_grads = _run(packed, x, lengths, False)
    got, got_grads = _run(packed, x, lengths, True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", list(sequence.KINDS))
def test_every_steps_readout_and_its_gradient_equal_the_torch_path(kind):
    packed = _pack(kind)
    x, lengths = _inputs(True, seed=3)
    want, want_grads = _run(packed, x, lengths, False, states=True)
    got, got_grads = _run(packed, x, lengths, True, states=True)
    assert got.shape == (len(packed), 6, 9, 3)  # read out at every step
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(got[:, 2, 1:], got[:, 2, :1].expand(-1, 8, -1))  # held after its end (length 1)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", list(sequence.KINDS))
@pytest.mark.parametrize("rows", [1, 10**6])
def test_sequences_sorted_longest_first_compute_only_running_rows_and_equal_the_torch_path(monkeypatch, kind, rows):
    monkeypatch.setattr(sequence, "WEIGHT_ROWS", rows)  # a weight-gradient product per step, or one
    products = []
    bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda a, *r, **k: products.append(a.shape[1]) or bmm(a, *r, **k))
    packed = _pack(kind)
    x, lengths = _inputs(True, seed=5)
    order = torch.argsort(lengths, descending=True, stable=True)
    x, lengths = x[order], lengths[order]  # lengths [9, 9, 6, 3, 1, 0]
    want, want_grads = _run(packed, x, lengths, False, states=True)
    products.clear()
    got, got_grads = _run(packed, x, lengths, True, states=True)
    assert products[:9] == [5, 4, 4, 3, 3, 3, 2, 2, 2]  # the forward: the rows still running at each step
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)
    assert sequence.running_rows(torch.tensor([3, 1, 2]), 3, 3) == [3, 3, 3]  # not sorted: every row


@pytest.mark.parametrize("rows", [1, 12, 10**6])
def test_the_weight_gradient_over_windows_of_steps_equals_the_torch_path(monkeypatch, rows):
    # batch 6 over 9 steps: a product per step, per 2 steps (the last window 1 step), or one
    monkeypatch.setattr(sequence, "WEIGHT_ROWS", rows)
    packed = _pack("gru")
    x, lengths = _inputs(True, seed=rows % 7)
    want, want_grads = _run(packed, x, lengths, False, states=True)
    got, got_grads = _run(packed, x, lengths, True, states=True)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", list(sequence.KINDS))
def test_any_thread_count_gives_bitwise_the_same_results(kind):
    # the kernels split a pack's models over torch's threads; each model's work is its own
    packed = _pack(kind)
    x, lengths = _inputs(True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a, ga = _run(packed, x, lengths, True, states=True)
        torch.set_num_threads(3)
        b, gb = _run(packed, x, lengths, True, states=True)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(a, b) and all(torch.equal(ga[k], gb[k]) for k in ga)


def test_the_same_inputs_give_bitwise_the_same_results():
    packed = _pack("gru")
    x, lengths = _inputs(True)
    a, ga = _run(packed, x, lengths, True)
    b, gb = _run(packed, x, lengths, True)
    assert torch.equal(a, b) and all(torch.equal(ga[k], gb[k]) for k in ga)


def test_only_the_kernel_path_runs_with_kernels_and_only_the_torch_path_without(monkeypatch):
    calls = []
    states = sequence.sequence_states
    monkeypatch.setattr(sequence, "sequence_states", lambda *a: calls.append(1) or states(*a))
    packed = _pack("lstm")
    x, lengths = _inputs(True)
    _run(packed, x, lengths, False)
    assert not calls
    _run(packed, x, lengths, True)
    assert calls


def test_cells_the_kernels_do_not_cover_take_the_torch_path():
    # wcrnn (a residual) and any device but the CPU or dtype but float32 step in torch
    assert not sequence.supports("wcrnn", torch.zeros(1))
    assert not sequence.supports("gru", torch.zeros(1, dtype=torch.float64))
    assert not sequence.supports("gru", torch.zeros(1, device="meta"))
    assert sequence.supports("gru", torch.zeros(1))
    packed = _pack("wcrnn", residual="heterogeneous", r=0.9, r_spread=0.05, gamma=0.3)
    x, lengths = _inputs(True)
    want, _ = _run(packed, x, lengths, False)
    got, _ = _run(packed, x, lengths, True)
    assert torch.equal(got, want)


def test_a_sparse_graph_op_takes_the_torch_path(monkeypatch):
    calls = []
    monkeypatch.setattr(sequence, "sequence_forward", lambda *a: calls.append(1))
    w = torch.randn(1, 12, 4)
    out = recurrent.recurrent_forward("gru", torch.zeros(2, 3, 2), torch.randn(1, 12, 2), w, torch.zeros(1, 12),
                                      torch.zeros(1, 12), None, torch.ones(1, 4), torch.randn(1, 2, 4),
                                      torch.ones(1, 4), torch.zeros(1, 2), graph_op=lambda h: h @ w[0].t())
    assert out.shape == (1, 2, 2) and not calls


def test_a_single_models_hidden_states_equal_the_torch_path():
    from topowire.compiler import wire
    from topowire.compiler.targets.recurrent import MaskedRecurrentNet

    arch = Arch("lstm", d_in=5, d_out=3)
    net = MaskedRecurrentNet(wire(ws_graph(10, 4, 0.2, seed=1), arch.orientation, arch.inputs, arch.outputs), arch, 7)
    x, lengths = _inputs(False, seed=2)
    with kernels.use_kernels(False):
        want = net.hidden_states(x, lengths)
    got = net.hidden_states(x, lengths)
    assert got.shape == (6, 9, 10)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_input_rows_outside_the_table_are_refused_before_any_kernel_runs():
    table, w = torch.zeros(1, 4, 3), torch.zeros(1, 1, 3)
    with pytest.raises(IndexError, match=r"input rows must lie in \[0, 4\), got \[0, 4\]"):
        sequence.sequence_states("gru", table, torch.tensor([[0, 4]]), w, torch.zeros(1, 1, 3), None)
    with pytest.raises(IndexError, match="got \\[-1, 0\\]"):
        sequence.sequence_states("rnn-tanh", table[..., :1], torch.tensor([[-1, 0]]), w[..., :1], None, None)
