"""The sequence-level cells (fused kernels, own backward) against the torch reference path."""

import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from topowire.compiler import Arch, functional, kernels, sequence
from topowire.compiler.compile import pack
from topowire.compiler.targets import recurrent
from topowire.topology import er_graph, ws_graph
from topowire.train.losses import per_model_loss

pytestmark = pytest.mark.skipif(kernels.library() is None, reason="the kernels need a C compiler")


def _pack(kind, d_in=5, **extra):
    graphs = [ws_graph(12, 4, 0.3, seed=s) for s in range(3)] + [er_graph(9, 0.3, seed=s) for s in range(2)]
    packed = pack(graphs, Arch(kind, d_in=d_in, d_out=3, **extra), seeds=range(5))
    with torch.no_grad():  # pruned connections: a recurrent edge and an input in every model
        packed.ih_mask[:, 0, 0] = 0
        packed.mask[:, 1, :] = 0
    return packed


def _inputs(one_hot, seed=0, b=6, t=9, d=5, lengths=None):
    gen = torch.Generator().manual_seed(seed)
    if lengths is None:  # for 6: one sequence ends at once, one is empty
        lengths = torch.tensor([9, 3, 1, 9, 6, 0]) if b == 6 else torch.randint(0, t + 1, (b,), generator=gen)
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
@pytest.mark.parametrize("b", [1, 17, 70, 150])
@pytest.mark.parametrize("one_hot", [True, False])
def test_batches_of_several_vectors_and_chunks_of_them_equal_the_torch_path(kind, b, one_hot):
    # a step's lanes (the batch) run as vectors of 16 (8 on AVX2 CPUs), up to 4 (2) at a time over
    # the edges and up to 8 (4) in the backward's per-unit pass: 17 lanes are 2 vectors, the second
    # partial; 70 are 5 (9), a whole chunk and a partial one; 150 are 10 (19), whole and partial both
    packed = _pack(kind)
    x, lengths = _inputs(one_hot, seed=b, b=b)
    want, want_grads = _run(packed, x, lengths, False, states=True)
    got, got_grads = _run(packed, x, lengths, True, states=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():  # relative to the largest: up to 70 x 9 steps' terms, summed in other orders
        assert float((got_grads[name] - w).abs().max()) <= 1e-5 * float(w.abs().max()), name


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
def test_sequences_sorted_longest_first_compute_only_running_vectors_and_equal_the_torch_path(monkeypatch, kind):
    computed = []
    lanes = sequence.lanes
    monkeypatch.setattr(sequence, "lanes", lambda *a: computed.append(lanes(*a)[1]) or lanes(*a))
    packed = _pack(kind)
    lengths = torch.tensor([9] * 4 + [6] * 12 + [3] * 12 + [1] * 11 + [0])  # sorted, as the trainer's batches
    x, _ = _inputs(True, seed=5, b=40, lengths=lengths)
    want, want_grads = _run(packed, x, lengths, False, states=True)
    got, got_grads = _run(packed, x, lengths, True, states=True)
    vec = kernels.vector_floats()
    running = [39, 39 - 11, 39 - 11, 16, 16, 16, 4, 4, 4]  # sequences running at each step
    assert computed == [[-(-r // vec) for r in running]]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)


def _ending_early(kind):
    """A pack of two (the second padded to 12 units) and 40 sequences sorted longest first: 3
    vectors of 16 lanes, ending at steps 6, 3 and 1."""
    graphs = [ws_graph(12, 4, 0.3, seed=0), er_graph(9, 0.3, seed=1)]
    lengths = torch.tensor([9] * 4 + [6] * 12 + [3] * 12 + [1] * 11 + [0])
    x, _ = _inputs(True, seed=5, b=40, lengths=lengths)
    return pack(graphs, Arch(kind, d_in=5, d_out=3), seeds=range(2)), x, lengths


def _poison_states(monkeypatch):
    """Every forward's states start NaN but for the first step (h_0, c_0 = 0), so a state read
    from a slot no step wrote shows."""
    forward_buffers = sequence._forward_buffers

    def poisoned(*args):
        h, c, saved, pool = forward_buffers(*args)
        for states in (h, c) if c is not None else (h,):
            states[:, 1:] = float("nan")
        return h, c, saved, pool

    monkeypatch.setattr(sequence, "_forward_buffers", poisoned)


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn-tanh"])
def test_the_last_state_alone_is_every_sequences_last_real_one_when_vectors_of_lanes_end_early(monkeypatch, kind):
    # read at the last step alone, a step's skipped lanes are not held step by step: the last slot
    # gets each vector's state when last computed, and the padding units zero -- here every other
    # slot starts as NaN, so a state taken from anywhere else shows
    _poison_states(monkeypatch)
    packed, x, lengths = _ending_early(kind)
    want, want_grads = _run(packed, x, lengths, False)
    got, got_grads = _run(packed, x, lengths, True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)
    with torch.no_grad(), kernels.use_kernels(True):  # two slots kept (evaluation)
        torch.testing.assert_close(packed(x, lengths), want, rtol=1e-5, atol=1e-6)


def test_lanes_run_to_each_steps_last_running_sequence():
    live, computed = sequence.lanes(torch.tensor([9, 9, 6, 3, 1, 0]), 9, 6, 4)
    assert live.shape == (9, 8) and live.dtype == torch.int32
    assert live[:, 6:].eq(0).all()  # padding lanes never run
    assert live[:, 2].tolist() == [1] * 6 + [0] * 3
    assert computed == [2, 1, 1, 1, 1, 1, 1, 1, 1]
    _, computed = sequence.lanes(torch.tensor([3, 1, 2]), 3, 3, 2)  # not sorted: up to the last running
    assert computed == [2, 2, 1]
    live, computed = sequence.lanes(None, 2, 5, 4)
    assert live.tolist() == [[1] * 5 + [0] * 3] * 2 and computed == [2, 2]


def test_the_input_gradient_sums_over_the_symbols_running_lanes_have_at_each_step():
    sym = torch.tensor([[0, 1, 7, 0], [2, 2, 0, 0], [7, 3, 3, 0]], dtype=torch.int32)
    live = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.int32)
    assert sequence._present(sym, live, 8).tolist() == [0b11, 0b100, 0b10001000]  # an ended lane's 7 not
    assert sequence._present(None, live, 8).tolist() == [-1, -1, -1]  # no table: every row


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_zero_input_inside_a_sequence_gets_its_gradient_as_on_the_torch_path(kind):
    packed = _pack(kind)
    x, lengths = _inputs(True)
    x[0, 2] = 0  # a running step with no symbol: the table's bias-only row
    want, want_grads = _run(packed, x, lengths, False)
    got, got_grads = _run(packed, x, lengths, True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)


def test_edges_list_each_units_inputs_once_per_mask_and_version():
    mask = torch.tensor([[[0, 1, 1], [0, 0, 0], [1, 0, 0]], [[0, 0, 0], [1, 0, 1], [0, 0, 0]]])
    rowptr, col, most = first = sequence.edges(mask)
    assert rowptr.tolist() == [[0, 2, 2, 3], [3, 3, 5, 5]]
    assert col.tolist() == [1, 2, 0, 0, 2] and most == 3
    assert sequence.edges(mask) is first  # kept
    assert sequence.edges(mask[1:])[1].tolist() == [0, 2]  # another view of it: its own
    mask[1, 1, 0] = 0  # pruned in place: listed again
    assert sequence.edges(mask)[1].tolist() == [1, 2, 0, 2] and sequence.edges(mask)[2] == 3
    key = id(mask)
    del mask, first, rowptr, col
    assert key not in sequence._EDGES  # dropped with its mask


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn-tanh"])
def test_a_mask_of_any_values_scales_its_weights_and_their_gradients_as_the_torch_path(kind):
    # the kernels read W_hh unmasked and apply the mask's entries themselves, forward and backward
    packed = _pack(kind)
    with torch.no_grad():
        packed.mask.mul_(torch.rand(packed.mask.shape, generator=torch.Generator().manual_seed(3)) + 0.5)
        packed.w_hh.add_(1.0)  # off the graph too: an entry the mask zeroes must not be read
    x, lengths = _inputs(True)
    want, want_grads = _run(packed, x, lengths, False)
    got, got_grads = _run(packed, x, lengths, True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():  # relative to the largest (weights near 2 saturate the states)
        assert float((got_grads[name] - w).abs().max()) <= 1e-5 * float(w.abs().max()), name


def test_a_connection_whose_weight_is_zero_still_gets_its_gradient():
    # the graph is the mask, not the weights' nonzeros
    packed = _pack("gru")
    with torch.no_grad():
        packed.w_hh[0, 0, 2] = 0.0
    assert packed.mask[0, 0, 2] == 1
    x, lengths = _inputs(True)
    _, want = _run(packed, x, lengths, False)
    _, got = _run(packed, x, lengths, True)
    assert want["w_hh"][0, 0, 2] != 0
    torch.testing.assert_close(got["w_hh"], want["w_hh"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("one_hot", [True, False])
@pytest.mark.parametrize("d", [5, 40])
def test_narrow_inputs_are_a_table_picked_by_symbol_or_weighted_by_values_and_equal_the_torch_path(one_hot, d):
    # inputs narrower than a vector: one-hot ones pick a row of W_ih.T + b_ih per lane, others
    # sum the rows of W_ih.T and b_ih weighted by the lane's values (computed in the kernels,
    # no [P, G*N, T*B] projection); wider inputs: every step's projection
    vec = kernels.vector_floats()
    x, _ = _inputs(one_hot, d=d)
    w_ih_t, bias = torch.randn(2, d, 12), torch.randn(2, 1, 12)
    got, sym, vals = sequence._inputs(x, w_ih_t, bias, 8, vec)
    if d < vec and one_hot:
        assert got.shape == (2, 12, vec) and sym.shape == (9, 8) and vals is None
        torch.testing.assert_close(got[..., :d + 1], functional.symbol_table(w_ih_t, bias).transpose(1, 2))
        assert sym[:, :6].t().tolist() == functional.one_hot_symbols(x).tolist()
    elif d < vec:
        assert got.shape == (2, 12, vec) and sym is None and vals.shape == (9, d + 1, 8)
        assert torch.equal(got[..., :d + 1], torch.cat([w_ih_t, bias], 1).transpose(1, 2))
        assert not got[..., d + 1:].any() and torch.equal(vals[:, :d, :6], x.permute(1, 2, 0))
        assert bool((vals[:, d] == 1).all()) and not vals[:, :d, 6:].any()
    else:  # every step's projection, lane by lane
        assert sym is None and vals is None and got.shape == (2, 12, 9 * 8)
        want = torch.baddbmm(bias, x.transpose(0, 1).reshape(1, 9 * 6, d).expand(2, -1, -1), w_ih_t)
        torch.testing.assert_close(got.view(2, 12, 9, 8)[..., :6].permute(0, 2, 3, 1).reshape(2, 54, 12), want)
    packed = _pack("lstm", d_in=d)
    x, lengths = _inputs(one_hot, d=d)
    want, want_grads = _run(packed, x, lengths, False)
    got, got_grads = _run(packed, x, lengths, True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name in ("w_ih", "b_ih", "b_hh"):
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-5, atol=1e-6, msg=name)


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
    states = sequence.sequence_forward
    monkeypatch.setattr(sequence, "sequence_forward", lambda *a: calls.append(1) or states(*a))
    packed = _pack("lstm")
    x, lengths = _inputs(True)
    _run(packed, x, lengths, False)
    assert not calls
    _run(packed, x, lengths, True)
    assert calls


def test_a_pack_is_one_kernel_call_unless_a_sub_pack_size_is_set(monkeypatch):
    # the kernels run a pack model by model already: no cache-sized split (here every model
    # alone) unless asked for
    monkeypatch.setattr(functional, "cache_bytes", lambda level=2: 4)
    calls = []
    states = sequence.sequence_forward
    monkeypatch.setattr(sequence, "sequence_forward", lambda *a: calls.append(a[2].shape[0]) or states(*a))
    packed = _pack("gru")
    x, lengths = _inputs(True)
    _run(packed, x, lengths, True)
    assert calls == [5]
    calls.clear()
    with functional.sub_packs(2):
        _run(packed, x, lengths, True)
    assert calls == [2, 2, 1]


def _recording(monkeypatch, kind, read):
    """Every forward kernel call of ``kind`` records ``read(s)`` (its arguments) in the list returned."""
    seen, family = [], sequence.KINDS[kind]
    forward = family.forward
    monkeypatch.setitem(sequence.KINDS, kind, dataclasses.replace(
        family, forward=lambda lib, s: seen.append(read(s)) or forward(lib, s)))
    return seen


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn-tanh"])
def test_states_streamed_from_a_working_ring_give_bitwise_the_same_results(monkeypatch, kind):
    # a forward whose kept states outgrow the last-level cache computes each step in a working
    # ring of its own and streams the states out; here with ended lanes and padding
    seen = _recording(monkeypatch, kind, lambda s: s.streamed)
    _poison_states(monkeypatch)
    packed, x, lengths = _ending_early(kind)
    in_place, in_place_grads = _run(packed, x, lengths, True)
    monkeypatch.setattr(sequence, "cache_bytes", lambda level: 0)
    streamed, streamed_grads = _run(packed, x, lengths, True)
    states, _ = _run(packed, x, lengths, True, states=True)  # every state read: written in place
    with torch.no_grad(), kernels.use_kernels(True):
        evaluated = packed(x, lengths)  # two slots kept: in place
    assert seen == [0, 1, 0, 0]
    assert torch.equal(streamed, in_place) and torch.equal(evaluated, in_place)
    assert all(torch.equal(streamed_grads[k], g) for k, g in in_place_grads.items())
    torch.testing.assert_close(states[:, :4, -1], streamed[:, :4])  # the longest sequences' last step (another product)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_forward_no_gradient_will_follow_saves_nothing_and_gives_the_same_values(monkeypatch, kind):
    seen = _recording(monkeypatch, kind, lambda s: s.saved)
    packed = _pack(kind)
    x, lengths = _inputs(True)
    with torch.no_grad():
        evaluated = packed(x, lengths)
    trained = packed(x, lengths)
    assert seen[0] is None and seen[1] is not None
    assert torch.equal(evaluated, trained.detach())


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn-tanh"])
def test_reused_buffers_give_a_forward_the_memory_its_last_backward_gave_back(monkeypatch, kind):
    seen = _recording(monkeypatch, kind, lambda s: (s.h, s.saved))
    packed = _pack(kind)
    x, lengths = _inputs(True)
    want = [_run(packed, x[:, :t], lengths.clamp(max=t), True) for t in (9, 8, 9)]
    with sequence.reused_buffers():
        got = [_run(packed, x[:, :t], lengths.clamp(max=t), True) for t in (9, 8, 9)]
    for (a, ga), (b, gb) in zip(want, got):
        assert torch.equal(a, b) and all(torch.equal(ga[k], gb[k]) for k in ga)
    assert seen[3] == seen[4] == seen[5]  # a shorter batch, and the longer again: the same buffers
    assert seen[3][1] is None if kind == "rnn-tanh" else seen[3][1] is not None


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_forward_that_reads_the_last_state_alone_keeps_two_steps(monkeypatch, kind):
    seen = _recording(monkeypatch, kind, lambda s: s.ring)
    packed = _pack(kind)
    x, lengths = _inputs(False)
    with torch.no_grad():
        last = packed(x, lengths)
        every = packed(x, lengths, all_steps=True)
    assert seen == [2, 10]  # T = 9: two steps, or all ten states
    torch.testing.assert_close(last, _run(packed, x, lengths, False)[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(every, _run(packed, x, lengths, False, states=True)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn-relu"])
def test_a_narrower_models_padding_is_skipped_its_states_zero_as_on_the_torch_path(monkeypatch, kind):
    seen = []
    states = sequence.sequence_forward
    monkeypatch.setattr(sequence, "sequence_forward", lambda *a: seen.append(a[-1].tolist()) or states(*a))
    packed = _pack(kind)  # three models of 12 neurons, two of 9
    x, lengths = _inputs(True)
    got = _run(packed, x, lengths, True, states=True)
    want = _run(packed, x, lengths, False, states=True)
    assert seen == [[12, 12, 12, 9, 9]]
    with torch.no_grad():
        hidden = recurrent.recurrent_forward(kind, x, packed.w_ih, packed.w_hh, packed.b_ih, packed.b_hh, packed.mask,
                                             packed.in_mask, packed.readout, packed.out_mask, packed.readout_bias,
                                             lengths, True, sizes=torch.tensor([12, 12, 12, 9, 9]))[1]
    assert torch.equal(hidden[3:, :, :, 9:], torch.zeros_like(hidden[3:, :, :, 9:]))
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    for name, w in want[1].items():
        torch.testing.assert_close(got[1][name], w, rtol=1e-5, atol=1e-6, msg=name)


def _step(packed, x, lengths, y, on, weights, objective="classification"):
    """A training step's per-model losses and gradients: the target's own (``on``: the kernels'
    training step) or the torch path's outputs scored, the losses weighted by ``weights``."""
    packed.zero_grad()
    with kernels.use_kernels(on):
        losses = packed.arch.target.losses(packed, x, lengths, y, objective)
        assert (losses is None) == (not on)
        if losses is None:
            losses = per_model_loss(packed(x, lengths), y, objective)
    (losses * weights).sum().backward()
    return losses.detach(), {name: p.grad.clone() for name, p in packed.named_parameters()}


@pytest.mark.parametrize("kind", list(sequence.KINDS))
@pytest.mark.parametrize("one_hot", [True, False])
@pytest.mark.parametrize("b", [6, 70])
def test_a_training_steps_losses_and_gradients_equal_the_torch_path(kind, one_hot, b):
    # forward, cross-entropy and backward model by model in one call; each model's gradients
    # scaled by its loss's upstream gradient (0 for a model left out, as a diverged one)
    packed = _pack(kind)
    x, lengths = _inputs(one_hot, seed=b, b=b)
    y = torch.randint(0, 3, (b,), generator=torch.Generator().manual_seed(b))
    weights = torch.tensor([1.0, 0.0, 2.5, 1.0, -0.5])
    want, want_grads = _step(packed, x, lengths, y, False, weights)
    got, got_grads = _step(packed, x, lengths, y, True, weights)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        assert float(w.abs().sum()) > 0 and not w[1].any(), name
        assert float((got_grads[name] - w).abs().max()) <= 1e-5 * float(w.abs().max()), name


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn-tanh"])
def test_a_training_steps_squared_error_and_its_gradients_equal_the_torch_path(kind):
    # a regression read out at the last step (the adding problem's kind): the mean over lanes and outputs
    packed = _pack(kind)
    x, lengths = _inputs(False, seed=4, b=20)
    y = torch.randn(20, 3, generator=torch.Generator().manual_seed(4))
    weights = torch.tensor([1.0, 0.0, 2.5, 1.0, -0.5])
    want, want_grads = _step(packed, x, lengths, y, False, weights, "regression")
    got, got_grads = _step(packed, x, lengths, y, True, weights, "regression")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        assert float(w.abs().sum()) > 0 and not w[1].any(), name
        assert float((got_grads[name] - w).abs().max()) <= 1e-5 * float(w.abs().max()), name


def test_a_training_steps_cross_entropy_of_large_logits_and_ten_classes_equals_the_torch_path():
    # the largest logit subtracted before the exponentials; lanes' sums multiplied 16 at a time
    graphs = [ws_graph(12, 4, 0.3, seed=s) for s in range(3)]
    packed = pack(graphs, Arch("gru", d_in=5, d_out=10), seeds=range(3))
    with torch.no_grad():
        packed.readout.mul_(40.0)
        packed.readout_bias.add_(torch.linspace(-30, 30, 10))
    x, lengths = _inputs(True, seed=7, b=70)
    y = torch.randint(0, 10, (70,), generator=torch.Generator().manual_seed(7))
    weights = torch.ones(3)
    want, want_grads = _step(packed, x, lengths, y, False, weights)
    got, got_grads = _step(packed, x, lengths, y, True, weights)
    assert bool(want.isfinite().all()) and float(want.min()) > 1.0  # confident and often wrong
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        assert float((got_grads[name] - w).abs().max()) <= 1e-5 * float(w.abs().max()), name


def test_a_training_step_reads_nothing_it_did_not_write(monkeypatch):
    # its work buffer (states, saved rows, gradient buffers) comes back from the pool as it was
    # left: here all NaN, so a state, cell state or gradient read before it is written shows
    packed, x, lengths = _ending_early("lstm")
    y = torch.arange(40) % 3
    weights = torch.ones(2)
    want, want_grads = _step(packed, x, lengths, y, False, weights)
    with sequence.reused_buffers():
        sequence._REUSED.get().give("work", torch.full((10**6,), float("nan")))
        got, got_grads = _step(packed, x, lengths, y, True, weights)
        assert not sequence._REUSED.get().free["work"][0].isnan().all()  # it was the one used
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for name, w in want_grads.items():
        torch.testing.assert_close(got_grads[name], w, rtol=1e-5, atol=1e-6, msg=name)


def test_a_training_step_is_bitwise_the_same_on_any_thread_count_and_in_sub_packs():
    packed = _pack("gru")
    x, lengths = _inputs(True)
    y, weights = torch.tensor([0, 1, 2, 2, 1, 0]), torch.ones(5)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a, ga = _step(packed, x, lengths, y, True, weights)
        torch.set_num_threads(3)
        b, gb = _step(packed, x, lengths, y, True, weights)
    finally:
        torch.set_num_threads(before)
    with functional.sub_packs(2):
        c, gc = _step(packed, x, lengths, y, True, weights)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert all(torch.equal(ga[k], gb[k]) and torch.equal(ga[k], gc[k]) for k in ga)


def test_a_training_step_refuses_targets_the_readout_cannot_have():
    packed = _pack("gru")
    x, lengths = _inputs(True)
    for y in (torch.tensor([0, 1, 3, 0, 0, 0]), torch.tensor([0, -1, 2, 0, 0, 0]), torch.tensor([0, 1])):
        with pytest.raises(ValueError, match="classes must be 6 values in \\[0, 3\\)"):
            packed.arch.target.losses(packed, x, lengths, y, "classification")
    for y in (torch.zeros(6, 1), torch.zeros(6), torch.zeros(5, 3)):
        with pytest.raises(ValueError, match="regression targets must be \\[6, 3\\]"):
            packed.arch.target.losses(packed, x, lengths, y, "regression")


def test_a_training_step_is_the_targets_only_for_a_classification_or_regression_with_a_gradient_on_the_kernels():
    packed, wcrnn = _pack("gru"), _pack("wcrnn", residual="homogeneous")
    x, lengths = _inputs(True)
    y = torch.zeros(6, dtype=torch.int64)
    target = packed.arch.target
    assert target.losses(packed, x, lengths, y, "classification") is not None
    assert target.losses(packed, x, lengths, torch.zeros(6, 3), "regression") is not None
    assert target.losses(packed, x, lengths, torch.zeros(6, 9, 3), "multilabel") is None
    assert target.losses(wcrnn, x, lengths, y, "classification") is None
    with torch.no_grad():
        assert target.losses(packed, x, lengths, y, "classification") is None
    with kernels.use_kernels(False):
        assert target.losses(packed, x, lengths, y, "classification") is None
    with functional.fused_steps():
        assert target.losses(packed, x, lengths, y, "classification") is None


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


@pytest.mark.parametrize("capability", ["AVX2", "DEFAULT"])
def test_narrower_vector_builds_equal_the_torch_path_too(tmp_path, capability):
    # this machine's build has one vector width; 8 lanes (AVX2, chunks of 2) and 4 (no vector
    # flags: one-hot inputs of 5 symbols take the dense input) are built and tested apart
    if capability == "AVX2" and torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("this CPU has no AVX2")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability.lower(), "TOPOWIRE_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                           "equal_the_torch_path and not narrower", "-x"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert " passed" in done.stdout
    assert len(list((tmp_path / "kernels").glob("cells-*.so"))) == 1  # its own build, with its own flags
