import numpy as np
import pytest
import torch

from topowire.compiler import Arch, Wiring, compile, wire
from topowire.compiler.cells import CELLS as EQUATIONS
from topowire.compiler.export import load, save
from topowire.compiler.targets.layered import LayeredRecurrentNet, PackedLayered
from topowire.errors import NotADAGError, ParameterError
from topowire.topology import Topology, ba_graph, er_graph, mlp_graph, ws_graph

CELLS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]


def _reference(net, x):
    """Per-neuron evaluation in the original node ids (an independent reading of the spec)."""
    w = net.wiring
    g = EQUATIONS[net.arch.cell].gates
    rank = np.empty(w.n_neurons, dtype=int)
    rank[net.order.numpy()] = np.arange(w.n_neurons)
    layer_of = w.layer
    b, t_steps = x.shape[:2]
    x = net._inputs(x)
    h = {v: torch.zeros(b) for v in range(w.n_neurons)}
    c = {v: torch.zeros(b) for v in range(w.n_neurons)}
    for t in range(t_steps):
        new_h, new_c = {}, {}
        for li in range(int(layer_of.max()) + 1):
            lo, hi = net.offsets[li], net.offsets[li + 1]
            members = [v for v in range(w.n_neurons) if layer_of[v] == li]
            for v in members:
                r = rank[v] - lo
                gx = torch.stack([net.b_ih[li][k * (hi - lo) + r].expand(b) for k in range(g)], -1)
                for k in range(g):
                    row = net.w_ih[li][k * (hi - lo) + r]
                    if li == 0:
                        gx[:, k] = gx[:, k] + x[:, t] @ row
                    else:
                        for u in w.edges[w.edges[:, 1] == v, 0]:
                            gx[:, k] = gx[:, k] + row[rank[u]] * new_h[int(u)]
                gh = torch.stack([net.b_hh[li][k * (hi - lo) + r].expand(b) for k in range(g)], -1)
                if len(net.w_hh):
                    for k in range(g):
                        for u in members:
                            gh[:, k] = gh[:, k] + net.w_hh[li][k * (hi - lo) + r, rank[u] - lo] * h[u]
                hv, cv = EQUATIONS[net.arch.cell].step(gx, gh, h[v][:, None], c[v][:, None], None, 1.0)
                new_h[v] = hv[:, 0]
                new_c[v] = cv[:, 0] if cv is not None else c[v]
        h, c = new_h, new_c
    state = torch.stack([h[v] for v in net.order.tolist()], 1)
    return torch.nn.functional.linear(state, net.readout * net.out_mask, net.readout_bias)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("recurrence", ["dense", "none"])
def test_layered_matches_a_per_neuron_reference(cell, recurrence):
    net = compile(er_graph(14, 0.25, seed=2), Arch("layered", cell=cell, recurrence=recurrence, d_in=3, d_out=2), seed=1)
    x = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net(x), _reference(net, x), rtol=1e-5, atol=1e-5)


def test_skip_edges_reach_later_layers_within_one_step():
    # 0 -> 1 -> 2 and the skip edge 0 -> 2: layer 2 reads layer 0's current state
    t = Topology(3, [[0, 1], [1, 2], [0, 2]], directed=True)
    net = compile(t, Arch("layered", cell="rnn-tanh", recurrence="none", orientation="as-is", d_in=1, d_out=1))
    assert net.sizes == [1, 1, 1]
    assert net.mask_ih2.tolist() == [[1.0, 1.0]]
    with torch.no_grad():
        net.w_ih[1].zero_()          # cut the path through neuron 1
    x = torch.randn(2, 1, 1)
    assert torch.autograd.functional.jacobian(lambda z: net(z), x).abs().sum() > 0  # via the skip edge


@pytest.mark.parametrize("cell", CELLS)
def test_layered_invariants(cell):
    net = compile(ws_graph(24, 4, 0.5, seed=3), Arch("layered", cell=cell, d_in=4, d_out=2), seed=0)
    zero = [(w.detach() == 0) & (getattr(net, f"mask_ih{li}").repeat(EQUATIONS[cell].gates, 1) == 0)
            for li, w in enumerate(net.w_ih)]
    assert any(z.any() for z in zero)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(20):
        opt.zero_grad()
        net(torch.randn(5, 6, 4, generator=torch.Generator().manual_seed(step))).pow(2).mean().backward()
        if step == 0:
            for w, z in zip(net.w_ih, zero):
                assert torch.all(w.grad[z] == 0)
        opt.step()
    for w, z in zip(net.w_ih, zero):
        assert torch.all(w.detach()[z] == 0)
    assert "layers=" in repr(net) and "n_edges=" in repr(net)


def test_no_path_neurons_get_zero_gradient():
    full = wire(er_graph(20, 0.15, seed=7), "dag")
    w = Wiring(20, full.edges, full.inputs, full.outputs[-1:], orientation="dag", layer=full.layer)
    net = compile(w, Arch("layered", cell="gru", recurrence="none", d_in=3, d_out=2))
    out = net(torch.randn(3, 5, 3)).sum()
    out.backward()
    import networkx as nx

    g = nx.DiGraph(w.edges.tolist())
    g.add_nodes_from(range(20))
    ok = set(nx.ancestors(g, int(w.outputs[0]))) | {int(w.outputs[0])}
    rank = {int(v): i for i, v in enumerate(net.order.tolist())}
    for v in range(20):
        li = int(w.layer[v])
        r = rank[v] - net.offsets[li]
        width = net.sizes[li]
        grad = net.b_ih[li].grad.view(3, width)[:, r]
        assert (grad.abs().sum() == 0) == (v not in ok), v


def test_thesis_input_width_is_the_number_of_sources():
    t = ba_graph(30, 2, seed=0)                     # under u<v a BA graph has one or two sources
    thesis = compile(t, Arch.thesis("gru", d_in=7))
    fixed = compile(t, Arch("layered", cell="gru", d_in=7))
    k = thesis.n_sources
    assert k < 7 and thesis.w_ih[0].shape == (3 * k, k)
    x = torch.randn(4, 5, 7)
    x2 = x.clone()
    x2[..., k:] = torch.randn(4, 5, 7 - k)
    torch.testing.assert_close(thesis(x), thesis(x2))    # symbols past the k-th are invisible
    assert not torch.allclose(fixed(x), fixed(x2))        # the corrected model sees them
    assert thesis.parameter_counts()["interface"] == 3 * k * k + len(thesis.wiring.outputs) * 2


def test_layered_save_load_and_errors(tmp_path):
    net = compile(mlp_graph([3, 4, 2]), Arch.thesis("lstm", orientation="as-is", d_in=3))
    save(net, tmp_path / "m.safetensors")
    x = torch.randn(2, 4, 3)
    assert torch.equal(load(tmp_path / "m.safetensors")(x), net(x))
    cyclic = Topology(3, [[0, 1], [1, 2], [2, 0]], directed=True)
    with pytest.raises(NotADAGError, match="cycle"):
        compile(cyclic, Arch("layered", orientation="as-is", inputs="all", outputs="all"))
    with pytest.raises(ParameterError, match="unknown cell"):
        Arch("layered", cell="transformer")
    from topowire.compiler.compile import pack  # pack() dispatches the layered form like compile()

    arch = Arch("layered", orientation="as-is")
    packed = pack([mlp_graph([2, 2])], arch, [3])
    x = torch.randn(4, 5, arch.d_in)
    assert type(packed).__name__ == "PackedLayered"
    assert torch.equal(packed(x)[0], compile(mlp_graph([2, 2]), arch, seed=3)(x))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_width, recurrence", [("sources", "dense"), ("fixed", "dense"), ("fixed", "none")])
def test_packed_layered_equals_each_model_alone(cell, input_width, recurrence):
    from topowire.compiler.targets.layered import LayeredRecurrentNet, PackedLayered

    graphs = [ba_graph(14, 2, seed=1), ws_graph(12, 4, 1.0, seed=2), er_graph(10, 0.3, seed=3), mlp_graph([3, 4, 2])]
    arch = Arch.thesis(cell, input_width=input_width, recurrence=recurrence, d_in=5, d_out=3)
    wirings = [wire(g, "as-is" if g.directed else "dag", "sources", "sinks") for g in graphs]
    packed = PackedLayered(wirings, arch, [4, 5, 6, 7])
    x = torch.randn(6, 9, 5, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([9, 2, 5, 9, 7, 1])
    out = packed(x, lengths)
    assert out.shape == (4, 6, 3)
    for p, (w, s) in enumerate(zip(wirings, [4, 5, 6, 7])):
        alone = LayeredRecurrentNet(w, arch, s)
        torch.testing.assert_close(out[p], alone(x, lengths), atol=1e-6, rtol=1e-5)
        for a, b in zip(packed.unpack(p).state_dict().values(), alone.state_dict().values()):
            assert torch.equal(a, b)


def test_packed_layered_trains_like_the_models_alone():
    from topowire.compiler.targets.layered import LayeredRecurrentNet, PackedLayered
    from topowire.data import make_task
    from topowire.train import TrainConfig, train_module, train_pack

    task = make_task("reber", n_train=96, n_test=32, seed=0)
    arch = Arch.thesis("gru", d_in=task.d_in, d_out=task.d_out)
    wirings = [wire(g, "dag", "sources", "sinks") for g in (ba_graph(12, 2, seed=1), ws_graph(10, 4, 1.0, seed=2))]
    packed = PackedLayered(wirings, arch, [1, 2])
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2)
    results = train_pack(packed, task, config)
    for p, (w, s) in enumerate(zip(wirings, [1, 2])):
        alone = LayeredRecurrentNet(w, arch, s)
        res = train_module(alone, task, config)
        assert res["test_acc"] == pytest.approx(results[p]["test_acc"], abs=1e-6)
        for a, b in zip(packed.unpack(p).parameters(), alone.parameters()):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # padding neurons never move: their masked weights get no gradient
    for li, s in enumerate(packed.widths):
        mask = getattr(packed, f"mask_ih{li}")
        w = packed.w_ih[li].detach().view(2, arch.gates, s, -1)
        assert not (w * (1 - mask[:, None])).any()


def test_train_population_packs_the_layered_form():
    from topowire.compiler.targets.layered import LayeredRecurrentNet
    from topowire.data import make_task
    from topowire.train import TrainConfig, train_population

    task = make_task("reber", n_train=64, n_test=32, seed=0)
    graphs = [ba_graph(12, 2, seed=1), ws_graph(10, 4, 1.0, seed=2), er_graph(11, 0.3, seed=3)]
    arch = Arch.thesis("lstm")
    frame = train_population(graphs, arch, task, TrainConfig(epochs=1, batch_size=32, replicates=2))
    assert len(frame) == 6 and (frame["status"] == "ok").all()
    wired = {g.id: wire(g, "dag", "sources", "sinks") for g in graphs}
    for row in frame.itertuples():
        net = LayeredRecurrentNet(wired[row.topology_id], arch.replace(d_in=task.d_in, d_out=task.d_out), 0)
        assert row.params == net.parameter_counts()["total"]
    with pytest.raises(ParameterError, match="every step"):
        train_population(graphs, arch, make_task("reber-next", n_train=16, n_test=8), TrainConfig(epochs=1))


def test_standalone_and_packed_layered_name_their_tensors_alike():
    arch = Arch.thesis("lstm", d_in=4)
    wirings = [wire(g, "dag", "sources", "sinks") for g in (ba_graph(12, 2, seed=1), ws_graph(10, 4, 1.0, seed=2))]
    packed = PackedLayered(wirings, arch, [1, 2])
    alone = LayeredRecurrentNet(wirings[0], arch, 1)
    # the same names, the pack's with a model axis; only the standalone keeps its neuron order
    assert set(alone.state_dict()) - {"order"} <= set(packed.state_dict())
    assert all(packed.state_dict()[k].shape[0] == 2 for k in set(alone.state_dict()) - {"order"})
    assert {"w_ih.0", "mask_ih0", "w_hh.1", "mask_hh1", "readout"} <= set(alone.state_dict())


def test_pruning_a_layered_pack_prunes_each_model_on_its_own():
    from topowire.dynamics.prune import prune

    arch = Arch.thesis("gru", d_in=4)
    wirings = [wire(g, "dag", "sources", "sinks") for g in (er_graph(14, 0.3, seed=4), ws_graph(12, 4, 0.5, seed=5))]
    packed = PackedLayered(wirings, arch, [3, 4])
    alone = [packed.unpack(i) for i in range(2)]
    prune(packed, 0.5, "both", "layer")
    for i, m in enumerate(alone):
        prune(m, 0.5, "both", "layer")
        for (name, a), b in zip(m.state_dict().items(), packed.unpack(i).state_dict().values()):
            assert torch.equal(a, b), name


def test_files_saved_with_the_old_layered_names_still_load(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file


    net = compile(er_graph(12, 0.3, seed=1), Arch.thesis("gru", d_in=3), seed=2)
    save(net, tmp_path / "new.safetensors")
    with safe_open(str(tmp_path / "new.safetensors"), framework="pt") as f:
        meta = f.metadata()
    old = {}
    for k, v in load_file(str(tmp_path / "new.safetensors")).items():
        if k.startswith("mask_"):
            k = f"cells.{k[7:]}.{k[:7]}"
        elif k.split(".")[0] in ("w_ih", "w_hh", "b_ih", "b_hh"):
            k = f"cells.{k.split('.')[1]}.{k.split('.')[0]}"
        old[k] = v
    assert "cells.1.mask_ih" in old and "cells.0.w_ih" in old
    save_file(old, str(tmp_path / "old.safetensors"), metadata=meta)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(load(tmp_path / "old.safetensors")(x), net(x), rtol=0, atol=0)
