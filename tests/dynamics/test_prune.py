import pytest
import torch

from topowire.cli import main
from topowire.compiler import Arch, compile
from topowire.compiler.compile import pack
from topowire.compiler.export import load, save
from topowire.data import make_task
from topowire.dynamics.prune import network_topology, prune
from topowire.errors import ParameterError
from topowire.topology import er_graph, mlp_graph, read_population, ws_graph
from topowire.train import TrainConfig, evaluate_module, train_module

ROLES = dict(orientation="both", inputs="all", outputs="all")


def _live_hh(net):
    g = net.arch.gates
    return (net.w_hh.detach() * net.mask.repeat(g, 1)).view(g, *net.mask.shape)


@pytest.mark.parametrize("kind", ["rnn-tanh", "gru"])
def test_global_pruning_removes_the_weakest_connections(kind):
    net = compile(ws_graph(16, 6, 0.3, seed=1), kind, d_in=4, seed=2, **ROLES)
    scores_hh = _live_hh(net).pow(2).sum(0).sqrt()[net.mask > 0]
    scores_ih = (net.w_ih.detach().view(net.arch.gates, 16, 4)).pow(2).sum(0).sqrt().flatten()
    counts = prune(net, 0.4, "both", "global")[0]
    total = counts["ih_before"] + counts["hh_before"]
    assert counts["ih_before"] == 64 and counts["hh_before"] == 96
    assert counts["ih"] + counts["hh"] == total - round(0.4 * total)
    # every surviving connection is at least as strong as every removed one
    kept_hh = net.mask > 0
    all_scores = torch.cat([scores_hh, scores_ih])
    threshold = torch.sort(all_scores).values[round(0.4 * total) - 1]
    assert float(_live_hh(net).pow(2).sum(0).sqrt()[kept_hh].min()) >= float(threshold)
    # pruned weights are zero in the parameters, and stay zero through training
    assert not (net.w_hh.detach() * (1 - net.mask.repeat(net.arch.gates, 1))).any()
    task = make_task("reber", n_train=64, n_test=32, seed=0)
    net2 = compile(ws_graph(16, 6, 0.3, seed=1), kind, d_in=task.d_in, d_out=task.d_out, seed=2, **ROLES)
    prune(net2, 0.5, "hh")
    mask = net2.mask.clone()
    train_module(net2, task, TrainConfig(epochs=2, batch_size=16, lr=1e-2))
    assert torch.equal(net2.mask, mask)
    assert not (net2.w_hh.detach() * (1 - mask.repeat(net2.arch.gates, 1))).any()


def test_layer_scope_prunes_each_tensor_at_the_rate():
    net = compile(mlp_graph([6, 6, 6]), Arch.thesis("lstm", input_width="fixed", d_in=5), seed=1)
    counts = prune(net, 0.3, "both", "layer")[0]
    for name in ("layer0.ih", "layer1.ih", "layer2.ih", "layer0.hh", "layer1.hh", "layer2.hh"):
        before = counts[f"{name}_before"]
        assert counts[name] == before - round(0.3 * before), name
    assert prune(net, 1.0, "hh", "layer")[0]["layer1.hh"] == 0


def test_packs_prune_each_model_on_its_own_weights():
    graphs = [ws_graph(12, 4, 0.3, seed=1), er_graph(9, 0.5, seed=2)]
    pk = pack(graphs, Arch("gru", **ROLES), seeds=[1, 2])
    alone = [pk.unpack(0), pk.unpack(1)]
    counts = prune(pk, 0.5, "hh")
    for p in range(2):
        assert counts[p] == prune(alone[p], 0.5, "hh")[0]
        torch.testing.assert_close(pk.unpack(p).mask, alone[p].mask)
        x = torch.randn(3, 5, 7)
        torch.testing.assert_close(pk(x)[p], alone[p](x), atol=1e-6, rtol=1e-5)
        assert network_topology(pk, p).n_edges == counts[p]["hh"]


def test_network_topology_round_trip_recompiles():
    net = compile(ws_graph(14, 4, 0.3, seed=3), "rnn-tanh", seed=1, **ROLES)
    prune(net, 0.5, "hh")
    topo = network_topology(net)
    assert topo.directed and topo.n == 14 and topo.n_edges == int(net.mask.sum())
    again = compile(topo, Arch("rnn-tanh", orientation="as-is", inputs="all", outputs="all"), seed=1)
    assert torch.equal(again.mask, net.mask)
    # the layered form: the surviving edges between layers, in the original neuron ids
    lay = compile(mlp_graph([3, 4, 2]), Arch.thesis("gru", input_width="fixed"), seed=0)
    assert sorted(map(tuple, network_topology(lay).edges.tolist())) == sorted(map(tuple, lay.wiring.edges.tolist()))
    prune(lay, 1.0, "ih", "layer")
    assert network_topology(lay).n_edges == 0


def test_bad_arguments():
    net = compile(er_graph(8, 0.4, seed=0), "gru", **ROLES)
    for kwargs, msg in (({"rate": 1.5}, "rate"), ({"rate": 0.5, "on": "xx"}, "on must"),
                        ({"rate": 0.5, "scope": "row"}, "scope")):
        with pytest.raises(ParameterError, match=msg):
            prune(net, **kwargs)
    with pytest.raises(ParameterError, match="prune"):
        prune(compile(er_graph(8, 0.4, seed=0), "iterative", orientation="dag", inputs="all", outputs="all"), 0.5)


def test_cli_prune_retrain_and_topology(tmp_path, capsys):
    task = make_task("reber", n_train=64, n_test=32, seed=0)
    net = compile(ws_graph(12, 4, 0.3, seed=1), "gru", d_in=task.d_in, d_out=task.d_out, seed=1, **ROLES)
    train_module(net, task, TrainConfig(epochs=1, batch_size=16, lr=1e-2))
    save(net, tmp_path / "m.safetensors")
    out, topo = tmp_path / "p.safetensors", tmp_path / "p.jsonl"
    assert main(["prune", str(tmp_path / "m.safetensors"), "--rate", "0.5", "--on", "hh", "--retrain", "1",
                 "--n-train", "64", "--n-test", "32", "--batch-size", "16", "--topology", str(topo),
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hh 24/48" in text and "after 1 retraining epochs" in text
    pruned = load(out)
    assert int(pruned.mask.sum()) == 24 and read_population(topo)[0].n_edges == 24
    assert evaluate_module(pruned, task)["test_acc"] >= 0
    for argv, msg in ((["--rate", "2"], "rate must"), (["--rate", "0.5", "--on", "x"], "unknown on 'x': expected one of ih"),
                      (["--rate", "0.5", "--task", "mnist", "--n-train", "10", "--n-test", "10"], "reads 7 features")):
        capsys.readouterr()
        bad = tmp_path / "bad.safetensors"
        assert main(["prune", str(tmp_path / "m.safetensors"), *argv, "-o", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not bad.exists()
