"""The engine's numeric core: sub-packs, the one-hot input gather, the cache size."""

import pytest
import torch

from topowire.compiler import Arch
from topowire.compiler import functional as F
from topowire.compiler.compile import pack
from topowire.compiler.targets import recurrent
from topowire.topology import er_graph, ws_graph

KINDS = [("rnn-tanh", {}), ("rnn-relu", {}), ("lstm", {}), ("gru", {}),
         ("wcrnn", {"residual": "heterogeneous", "r": 0.9, "r_spread": 0.05, "gamma": 0.3})]


def _pack(kind, extra, d_in=5):
    graphs = [ws_graph(12, 4, 0.3, seed=s) for s in range(4)] + [er_graph(9, 0.3, seed=s) for s in range(3)]
    packed = pack(graphs, Arch(kind, d_in=d_in, d_out=3, **extra), seeds=range(7))
    with torch.no_grad():  # a pruned input connection in every model: the ih_mask buffer takes part
        packed.ih_mask[:, 0, 0] = 0
    return packed


def _one_hot(b, t, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.one_hot(torch.randint(0, d, (b, t), generator=gen), d).float()
    lengths = torch.randint(2, t + 1, (b,), generator=gen)
    x[torch.arange(t)[None, :] >= lengths[:, None]] = 0  # zero padding after each length
    return x, lengths


def _grads(packed, x, lengths):
    packed.zero_grad()
    out = packed(x, lengths)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in packed.parameters()]


@pytest.mark.parametrize("kind, extra", KINDS)
@pytest.mark.parametrize("size", [1, 3])
def test_sub_packs_give_the_results_and_gradients_of_one_program(kind, extra, size, monkeypatch):
    packed = _pack(kind, extra)
    x, lengths = _one_hot(6, 9, 5)
    with F.sub_packs(0):
        want, want_grads = _grads(packed, x, lengths)
    programs = []
    forward = recurrent.recurrent_forward
    monkeypatch.setattr(recurrent, "recurrent_forward", lambda *a, **k: programs.append(1) or forward(*a, **k))
    with F.sub_packs(size):
        got, got_grads = _grads(packed, x, lengths)
    assert len(programs) == -(-len(packed) // size)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
    assert any(float(g.abs().sum()) > 0 for g in got_grads)


@pytest.mark.parametrize("kind, extra", KINDS)
def test_the_one_hot_gather_equals_the_product_it_replaces(kind, extra, monkeypatch):
    packed = _pack(kind, extra)
    x, lengths = _one_hot(6, 9, 5, seed=1)
    assert F.one_hot_symbols(x) is not None
    got, got_grads = _grads(packed, x, lengths)
    monkeypatch.setattr(F, "one_hot_symbols", lambda x: None)  # the reference: one baddbmm per step
    want, want_grads = _grads(packed, x, lengths)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_one_hot_symbols_reads_symbols_and_padding_and_refuses_other_inputs():
    x = torch.tensor([[[0.0, 1, 0], [0, 0, 0]], [[1, 0, 0], [0, 0, 1]]])
    assert F.one_hot_symbols(x).tolist() == [[1, 3], [0, 2]]
    assert F.one_hot_symbols(x * 0.5) is None  # not 0/1
    assert F.one_hot_symbols(torch.ones(2, 2, 3)) is None  # two symbols at once
    assert F.one_hot_symbols(torch.zeros(2, 0, 3)) is None
    assert F.one_hot_symbols(x.to("meta")) is None  # an accelerator: never read back to the host


def test_input_projection_gathers_rows_of_the_weights_plus_bias():
    gen = torch.Generator().manual_seed(2)
    w_t, bias = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 1, 4, generator=gen)
    x = torch.tensor([[[0.0, 0, 1]], [[0, 0, 0]]])  # B = 2, T = 1: symbol 2, then padding
    gx = F.input_projection(x, w_t, bias)(0)
    assert gx.shape == (2, 2, 4)
    assert torch.equal(gx[:, 0], w_t[:, 2] + bias[:, 0]) and torch.equal(gx[:, 1], bias[:, 0])
    dense = torch.tensor([[[0.5, 0, 1]]])
    torch.testing.assert_close(F.input_projection(dense, w_t, bias)(0), torch.baddbmm(bias, dense[:, 0].expand(2, 1, 3), w_t))


def test_over_sub_packs_splits_tensors_tuples_and_none():
    seen = []

    def fn(a, pair, nothing):
        seen.append((a.shape[0], pair[0].shape[0], nothing))
        return a * 2, pair[1] + 1

    a, pair = torch.arange(5.0), (torch.zeros(5), torch.ones(5))
    out = F.over_sub_packs(fn, {"a": a, "pair": pair, "nothing": None}, 2)
    assert seen == [(2, 2, None), (2, 2, None), (1, 1, None)]
    assert torch.equal(out[0], a * 2) and torch.equal(out[1], torch.full((5,), 2.0))


def test_sub_pack_size_fills_the_l2_cache_on_the_cpu_only():
    cpu = torch.device("cpu")
    l2 = F.cache_bytes(2)
    assert F.sub_pack_size(10**6, 128, 192, cpu) == max(1, l2 // (128 * 192 * 4))
    assert F.sub_pack_size(3, 1, 1, cpu) == 3  # never more than the pack
    assert F.sub_pack_size(256, 10**6, 10**6, cpu) == 1  # never less than one model
    with F.sub_packs(16):
        assert F.sub_pack_size(256, 128, 192, cpu) == 16
        assert F.sub_pack_size(256, 128, 192, torch.device("meta")) == 256  # an accelerator: one program
    with F.sub_packs(0):
        assert F.sub_pack_size(256, 128, 192, cpu) == 256
    assert F.sub_pack_size(256, 128, 192, cpu, by_cache=False) == 256  # the kernels: unset is the whole pack
    with F.sub_packs(16):
        assert F.sub_pack_size(256, 128, 192, cpu, by_cache=False) == 16  # a set size still holds


def test_cache_bytes_reads_each_level_from_sysfs_and_falls_back(tmp_path):
    for i, (level, size) in enumerate([("1", "32K"), ("2", "1024K"), ("3", "32768K")]):
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "level").write_text(level + "\n")
        (tmp_path / f"index{i}" / "size").write_text(size + "\n")
    assert F.cache_bytes(2, str(tmp_path)) == 2**20 and F.cache_bytes(3, str(tmp_path)) == 2**25
    assert F.cache_bytes(2, str(tmp_path / "absent")) == F.DEFAULT_CACHE[2] == 2**20
    assert F.cache_bytes(3, str(tmp_path / "absent")) == F.DEFAULT_CACHE[3]


@pytest.mark.parametrize("kind, extra", [k for k in KINDS if k[0] != "gru"])
def test_a_summed_cell_folds_its_input_into_the_product_with_the_reference_results(kind, extra, monkeypatch):
    import dataclasses

    from topowire.compiler.cells import CELLS

    assert CELLS[kind].summed is not None and CELLS["gru"].summed is None  # the GRU reads gx and gh apart
    packed = _pack(kind, extra)
    for x, lengths in (_one_hot(6, 9, 5, seed=4), (torch.randn(6, 9, 5, generator=torch.Generator().manual_seed(5)),
                                                    torch.tensor([9, 3, 5, 9, 1, 7]))):
        got, got_grads = _grads(packed, x, lengths)
        with monkeypatch.context() as m:  # the reference: the cell's step on gx and gh apart
            m.setitem(CELLS, kind, dataclasses.replace(CELLS[kind], summed=None))
            want, want_grads = _grads(packed, x, lengths)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        for g, w in zip(got_grads, want_grads):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, extra", KINDS)
@pytest.mark.parametrize("first_mask", ["host", "device"])
def test_the_readout_picks_each_sequences_last_real_state_as_holding_it_would(kind, extra, first_mask, monkeypatch):
    if first_mask == "device":  # as on an accelerator: the shortest length is not read back, every step may end one
        monkeypatch.setattr(recurrent, "first_masked_step", lambda lengths, t: t if lengths is None else 0)
    packed = _pack(kind, extra)
    x, lengths = _one_hot(6, 9, 5, seed=6)
    lengths[0] = 9  # one sequence runs to the end
    got, got_grads = _grads(packed, x, lengths)

    forward = recurrent.recurrent_forward  # the reference: every ended sequence's state held step by step
    monkeypatch.setattr(recurrent, "recurrent_forward", lambda *a, **k: forward(*a, **{**k, "return_states": True})[0])
    want, want_grads = _grads(packed, x, lengths)
    assert torch.equal(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-7)
