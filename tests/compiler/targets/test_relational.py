"""The relational graph MLP (graph2nn): the complete graph is the dense MLP, a pack computes
what each model computes alone, and widths matched to a parameter budget land within 1%."""

import numpy as np
import pytest
import torch

from topowire.compiler import Arch, compile, pack
from topowire.compiler.export import _SPEC_KEY, export_torchscript, load, save
from topowire.compiler.targets.relational import channel_counts
from topowire.topology import complete_graph, generate, load_recipe, sample_population
from topowire.topology.generators import wsflex_graph

ARCH = Arch("relational", d_in=12, d_out=5, width=96, depth=2)


def _dense_mlp(net):
    layers, width = [], net.width
    sizes = [net.arch.d_in] + [width] * (net.arch.depth + 1)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [torch.nn.Linear(a, b, bias=False), torch.nn.BatchNorm1d(b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, net.arch.d_out))
    with torch.no_grad():
        for i, name in enumerate(["stem", *[f"weight{i}" for i in range(net.arch.depth)]]):
            layers[3 * i].weight.copy_(getattr(net, name))
        layers[-1].weight.copy_(net.head)
        layers[-1].bias.copy_(net.head_bias)
    return torch.nn.Sequential(*layers)


def test_the_complete_graph_is_the_dense_mlp_in_training_and_in_evaluation():
    net = compile(complete_graph(8), ARCH, seed=0)
    mlp = _dense_mlp(net)
    assert net.width == 96 and sum(p.numel() for p in mlp.parameters()) == net.parameter_counts()["total"]
    x = torch.randn(32, 12, generator=torch.Generator().manual_seed(1))
    for _ in range(3):  # training mode: batch statistics, and the running ones updated alike
        torch.testing.assert_close(net(x), mlp(x), rtol=1e-5, atol=1e-5)
    net.eval(), mlp.eval()
    torch.testing.assert_close(net(x), mlp(x), rtol=1e-5, atol=1e-5)


def test_a_sparse_graph_masks_channels_by_its_edges_and_self_loops():
    g = generate("ring", n=6, k=2)
    net = compile(g, ARCH, seed=0)
    node = np.repeat(np.arange(6), channel_counts(net.width, 6))
    mask = net.mask.numpy().astype(bool)
    ring = {(i, j) for i in range(6) for j in range(6) if i == j or abs(i - j) in (1, 5)}
    assert all(mask[a, b] == ((node[a], node[b]) in ring) for a in range(net.width) for b in range(net.width))
    assert (net.weight0.detach().numpy()[~mask] == 0).all()


def test_each_model_of_a_pack_computes_and_learns_what_it_does_alone():
    graphs = [wsflex_graph(8, k, 0.3, seed=i) for i, k in enumerate([2.0, 3.5, 5.0, 7.0])]
    packed = pack(graphs, ARCH, seeds=[0, 1, 2, 3])
    alone = [compile(g, ARCH, seed=s) for s, g in enumerate(graphs)]
    assert len({m.width for m in alone}) > 1  # different widths, padded
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(2))
    y = packed(x)  # training mode: every forward updates BatchNorm's running statistics once
    outs = [net(x) for net in alone]
    for p, out in enumerate(outs):
        torch.testing.assert_close(y[p], out, rtol=1e-5, atol=1e-5)
    y.pow(2).sum().backward()
    for p, (net, out) in enumerate(zip(alone, outs)):
        out.pow(2).sum().backward()
        torch.testing.assert_close(packed.stem.grad[p, :net.width], net.stem.grad, rtol=1e-4, atol=1e-6)
        assert (packed.stem.grad[p, net.width:] == 0).all()
    packed.eval()
    for p, net in enumerate(alone):
        torch.testing.assert_close(packed.unpack(p).eval()(x), net.eval()(x), rtol=1e-5, atol=1e-5)


def test_widths_match_the_dense_budget_within_one_percent_on_the_graph2nn_recipe():
    arch = Arch("relational", d_in=784, d_out=10, width=128, depth=3)
    pop = sample_population(load_recipe("graphs/graph2nn.toml"))
    budget = compile(complete_graph(32), arch).parameter_counts()["total"]
    totals = np.array([arch.target.parameter_counts(compile(t, arch).wiring, arch)["total"] for t in pop])
    assert np.abs(totals / budget - 1).max() <= 0.01


def test_a_relational_model_saves_loads_and_exports(tmp_path):
    net = compile(wsflex_graph(8, 3.0, 0.2, seed=0), ARCH, seed=3).eval()
    save(net, tmp_path / "r.safetensors")
    again = load(tmp_path / "r.safetensors").eval()
    x = torch.randn(4, 12)
    torch.testing.assert_close(again(x), net(x))
    export_torchscript(net, tmp_path / "r.pt", batch=4)
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "r.pt"))(x), net(x))


def test_a_budget_no_width_can_meet_is_refused():
    from topowire.errors import ParameterError

    with pytest.raises(ParameterError, match="no width of this 8-node graph has"):
        compile(generate("ring", n=8, k=2), Arch("relational", d_in=4, d_out=2, width=8, depth=2))


def test_a_saved_relational_spec_edited_to_a_wider_model_is_refused_before_building(tmp_path):
    import json
    import struct

    from topowire.errors import FileFormatError

    net = compile(wsflex_graph(8, 3.0, 0.2, seed=0), ARCH, seed=3)
    save(net, tmp_path / "r.safetensors")
    raw = (tmp_path / "r.safetensors").read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    spec = json.loads(header["__metadata__"][_SPEC_KEY])
    spec["arch"]["width"] = 4  # a matched width can be at most 16 x width + n: 72 < the file's
    header["__metadata__"][_SPEC_KEY] = json.dumps(spec)
    text = json.dumps(header).encode()
    (tmp_path / "e.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size:])
    with pytest.raises(FileFormatError, match="a spec and tensors that do not match"):
        load(tmp_path / "e.safetensors")


def test_the_width_search_finds_the_nearest_width_of_an_exhaustive_scan():
    from topowire.compiler import wire
    from topowire.compiler.targets.relational import _undirected, relational_counts, relational_width

    arch = Arch("relational", d_in=64, d_out=10, width=128, depth=3)
    for i, (k, p) in enumerate([(2.0, 0.0), (3.7, 0.5), (9.0, 1.0), (15.0, 0.0)]):
        w = wire(wsflex_graph(16, k, p, seed=i), "both", "all", "all")
        budget = relational_counts(16, _undirected(wire(complete_graph(16), "both", "all", "all")), 128, arch)["total"]
        totals = [relational_counts(16, _undirected(w), width, arch)["total"] for width in range(1, 16 * 128 + 17)]
        assert relational_width(w, arch) == 1 + int(np.argmin(np.abs(np.array(totals) - budget)))
