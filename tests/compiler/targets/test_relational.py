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
    assert net.stem_width == 96 < net.width  # graph2nn's rule: the stem keeps the dense width
    ring = {(i, j) for i in range(6) for j in range(6) if i == j or abs(i - j) in (1, 5)}
    for name, weight, rows, cols in (("mask", net.weight1, net.width, net.width),
                                     ("mask_in", net.weight0, net.width, net.stem_width)):
        out_node = np.repeat(np.arange(6), channel_counts(rows, 6))
        in_node = np.repeat(np.arange(6), channel_counts(cols, 6))
        mask = getattr(net, name).numpy().astype(bool)
        assert mask.shape == (rows, cols)
        assert all(mask[a, b] == ((out_node[a], in_node[b]) in ring) for a in range(rows) for b in range(cols))
        assert (weight.detach().numpy()[~mask] == 0).all()


@pytest.mark.parametrize("match", ["flops", "params"])
def test_each_model_of_a_pack_computes_and_learns_what_it_does_alone(match):
    arch = ARCH.replace(match=match)
    graphs = [wsflex_graph(8, k, 0.3, seed=i) for i, k in enumerate([2.0, 3.5, 5.0, 7.0])]
    packed = pack(graphs, arch, seeds=[0, 1, 2, 3])
    alone = [compile(g, arch, seed=s) for s, g in enumerate(graphs)]
    assert len({m.width for m in alone}) > 1  # different widths, padded
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(2))
    y = packed(x)  # training mode: every forward updates BatchNorm's running statistics once
    outs = [net(x) for net in alone]
    for p, out in enumerate(outs):
        torch.testing.assert_close(y[p], out, rtol=1e-5, atol=1e-5)
    y.pow(2).sum().backward()
    for p, (net, out) in enumerate(zip(alone, outs)):
        out.pow(2).sum().backward()
        torch.testing.assert_close(packed.stem.grad[p, :net.stem_width], net.stem.grad, rtol=1e-4, atol=1e-6)
        assert (packed.stem.grad[p, net.stem_width:] == 0).all()
        torch.testing.assert_close(packed.head.grad[p, :, :net.width], net.head.grad, rtol=1e-4, atol=1e-6)
    packed.eval()
    for p, net in enumerate(alone):
        torch.testing.assert_close(packed.unpack(p).eval()(x), net.eval()(x), rtol=1e-5, atol=1e-5)


def test_widths_match_the_dense_parameters_within_one_percent_under_match_params():
    arch = Arch("relational", d_in=784, d_out=10, width=128, depth=3, match="params")
    pop = sample_population(load_recipe("graphs/graph2nn.toml"))[:20]
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

    for match, measure in (("params", "total"), ("flops", "flops")):
        arch = Arch("relational", d_in=64, d_out=10, width=128, depth=3, match=match)
        complete = _undirected(wire(complete_graph(16), "both", "all", "all"))
        for i, (k, p) in enumerate([(2.0, 0.0), (3.7, 0.5), (9.0, 1.0), (15.0, 0.0)]):
            w = wire(wsflex_graph(16, k, p, seed=i), "both", "all", "all")
            budget = relational_counts(16, complete, 128, arch)[measure]
            totals = [relational_counts(16, _undirected(w), width, arch)[measure] for width in range(1, 16 * 128 + 17)]
            assert relational_width(w, arch) == 1 + int(np.argmin(np.abs(np.array(totals) - budget)))


@pytest.mark.parametrize("width, flops", [(256, 985_600), (512, 2_364_416), (1024, 6_301_696)])
def test_the_dense_mlp_has_graph2nns_published_flops(width, flops):
    """graph2nn's tools/train_net.py: the FLOPs budget of its 5-layer CIFAR-10 MLP at each width."""
    arch = Arch("relational", d_in=3072, d_out=10, width=width, depth=3)
    assert arch.target.parameter_counts(compile(complete_graph(64), arch).wiring, arch)["flops"] == flops


def test_under_match_flops_the_relational_stage_is_matched_and_sparse_graphs_are_wide():
    from topowire.compiler import wire
    from topowire.compiler.targets.relational import _undirected, relational_counts

    arch = Arch("relational", d_in=784, d_out=10, width=512, depth=3)  # graph2nn's MLP, on 28 x 28 images
    dense = relational_counts(64, _undirected(wire(complete_graph(64), "both", "all", "all")), 512, arch)
    stage = dense["flops"] - 784 * 512
    widths = []
    for t in sample_population(load_recipe("graphs/graph2nn.toml")):
        net = compile(t, arch)
        c = net.parameter_counts()
        assert net.stem_width == 512 and net.stem.shape == (512, 784)
        assert abs((c["flops"] - 784 * 512) / stage - 1) <= 0.01, t.id
        widths.append(net.width)
    assert min(widths) == 512 and max(widths) > 2.5 * 512
    ring = compile(generate("ring", n=64, k=8), arch)
    assert ring.width >= 2.5 * 512
