import pytest
import torch

from topowire.compiler import Arch, compile, wire
from topowire.compiler.compile import pack, unpack
from topowire.errors import ParameterError
from topowire.topology import ba_graph, er_graph, mlp_graph, ws_graph

KINDS = ["iterative", "rnn-tanh", "rnn-relu", "lstm", "gru", "wcrnn"]
GRAPHS = [ws_graph(20, 4, 0.3, seed=1), ba_graph(13, 2, seed=1), er_graph(25, 0.2, seed=3),
          ws_graph(8, 2, 0.0, seed=0)]
SEEDS = [11, 12, 13, 14]


def _options(kind):
    return {"activation": "tanh"} if kind == "iterative" else {}


def _x(kind, b=5, t=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g) if kind == "iterative" else torch.randn(b, t, d, generator=g)


@pytest.mark.parametrize("kind", KINDS)
def test_pack_initialises_every_model_like_compile(kind):
    packed = pack(GRAPHS, kind, seeds=SEEDS, d_in=5, d_out=3, **_options(kind))
    x = _x(kind)
    y = packed(x)
    assert y.shape == (4, 5, 3)
    for p, (t, s) in enumerate(zip(GRAPHS, SEEDS)):
        alone = compile(t, kind, seed=s, d_in=5, d_out=3, **_options(kind))
        for (name, a), b in zip(alone.named_parameters(), packed.model_tensors(p).values()):
            assert torch.equal(a.detach(), b), (p, name)
        torch.testing.assert_close(y[p], alone(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_are_per_model_and_padding_is_never_touched(kind):
    packed = pack(GRAPHS, kind, seeds=SEEDS, d_in=5, d_out=3, **_options(kind))
    x, target = _x(kind), torch.randn(5, 3)
    loss = ((packed(x) - target) ** 2).mean(dim=(1, 2)).sum()  # sum of per-model mean losses
    loss.backward()
    for p, (t, s) in enumerate(zip(GRAPHS, SEEDS)):
        alone = compile(t, kind, seed=s, d_in=5, d_out=3, **_options(kind))
        ((alone(x) - target) ** 2).mean().backward()
        n = t.n
        for name, param in alone.named_parameters():
            full = getattr(packed, name).grad[p]
            from topowire.compiler.pack import padded_view

            view = padded_view(full, packed.arch.target.layout[name], n, packed.n_max, packed.arch.gates)
            torch.testing.assert_close(view, param.grad.view(view.shape), rtol=1e-5, atol=1e-6)
            # everything outside the model's true size is padding: exactly zero gradient
            assert full.abs().sum().item() == pytest.approx(view.abs().sum().item(), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("kind", ["gru", "lstm", "iterative"])
def test_unpack_after_training_matches_the_packed_slice(kind):
    packed = pack(GRAPHS, kind, seeds=SEEDS, d_in=5, d_out=3)
    opt = torch.optim.Adam(packed.parameters(), lr=1e-2)
    for step in range(10):
        opt.zero_grad()
        packed(_x(kind, seed=step)).pow(2).mean(dim=(1, 2)).sum().backward()
        opt.step()
    x = _x(kind, seed=99)
    y = packed(x)
    for p in range(len(GRAPHS)):
        net = unpack(packed, p)
        torch.testing.assert_close(net(x), y[p], rtol=1e-6, atol=1e-6)
        w = net.w_hh if net.arch.recurrent else net.weight
        assert torch.all(w[net.effective_weight() == 0] == 0)  # masked weights stayed zero


def test_variable_lengths_in_a_pack():
    packed = pack(GRAPHS, "gru", seeds=SEEDS, d_in=5, d_out=3)
    x, lengths = _x("gru", t=8), torch.tensor([8, 2, 5, 1, 7])
    y = packed(x, lengths)
    for p in range(len(GRAPHS)):
        torch.testing.assert_close(y[p], packed.unpack(p)(x, lengths), rtol=1e-6, atol=1e-6)
        # padding steps after a sequence's length change nothing
        x2 = x.clone()
        x2[1, 2:] = 100.0
        torch.testing.assert_close(packed(x2, lengths)[p, 1], y[p, 1])


def test_iterative_pack_runs_the_deepest_models_iterations():
    ts = [mlp_graph([3, 4, 2]), mlp_graph([3, 4, 4, 4, 2])]
    packed = pack(ts, "iterative", seeds=[0, 1], orientation="as-is", d_in=3, d_out=2)
    assert packed.iterations == 5
    x = _x("iterative", d=3)
    for p, t in enumerate(ts):
        torch.testing.assert_close(packed(x)[p], compile(t, "iterative", seed=p, orientation="as-is",
                                                         d_in=3, d_out=2)(x), rtol=1e-6, atol=1e-6)


def test_pack_accepts_wirings_and_reports():
    ws = [wire(t, "dag") for t in GRAPHS]
    packed = pack(ws, Arch("gru"), seeds=SEEDS)
    assert len(packed) == 4 and packed.n_max == 25
    assert "models=4" in repr(packed)
    assert [c["graph"] for c in packed.parameter_counts()] == [3 * t.n_edges for t in GRAPHS]


def test_bad_packs():
    with pytest.raises(ParameterError, match="at least one wiring"):
        pack([], "gru")
    with pytest.raises(ParameterError, match="got 1 seeds for 2 wirings"):
        from topowire.compiler.pack import PackedPopulation

        PackedPopulation([wire(GRAPHS[0]), wire(GRAPHS[1])], Arch("gru"), [1])
    with pytest.raises(IndexError):
        pack(GRAPHS[:1], "gru").unpack(3)
