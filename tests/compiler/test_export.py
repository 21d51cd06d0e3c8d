import json

import numpy as np
import pytest
import torch

from topowire.cli import main
from topowire.compiler import Arch, compile
from topowire.compiler.export import export_onnx, export_torchscript, load, read_spec, save
from topowire.compiler.sequential2d import Sequential2D
from topowire.errors import FileFormatError
from topowire.topology import ba_graph, mlp_graph, write_population
from topowire.topology.population import Population

KINDS = ["iterative", "rnn-tanh", "rnn-relu", "lstm", "gru", "wcrnn"]
GRAPH = ba_graph(16, 2, seed=0)


def _x(kind, seq_len=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 5, generator=g) if kind == "iterative" else torch.randn(3, seq_len, 5, generator=g)


def _trained(kind):
    net = compile(GRAPH, kind, d_in=5, d_out=4, seed=7, inputs=3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
    return net


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_bit_for_bit(kind, tmp_path):
    net = _trained(kind)
    save(net, tmp_path / "m.safetensors", topology=GRAPH)
    back = load(tmp_path / "m.safetensors")
    assert type(back) is type(net) and back.arch == net.arch
    assert torch.equal(back(_x(kind)), net(_x(kind)))
    spec = read_spec(tmp_path / "m.safetensors")
    assert spec["topology"]["id"] == GRAPH.id and spec["wiring"]["topology_id"] == GRAPH.id


def test_sequential2d_round_trip(tmp_path):
    for net in (Sequential2D.mlp([8, 6, 3], seed=2), Sequential2D.randomized([8, 6, 3], seed=2)):
        save(net, tmp_path / "s.safetensors")
        x = torch.randn(4, 8)
        assert torch.equal(load(tmp_path / "s.safetensors")(x), net(x))


def test_files_hold_no_pickle(tmp_path):
    save(_trained("gru"), tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    assert "__metadata__" in header and b"\x80\x04" not in raw[:8 + header_len]


def _rewrite(path, tensors=None, spec=None):
    from safetensors.torch import load_file, save_file

    t = load_file(str(path))
    meta = read_spec(path)
    save_file(tensors(t) if tensors else t, str(path), metadata={"topowire": json.dumps(spec(meta) if spec else meta)})


def test_tampered_or_incompatible_files_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save(_trained("gru"), path)
    _rewrite(path, tensors=lambda t: {**t, "w_hh": torch.zeros(3, 3)})
    with pytest.raises(FileFormatError, match=r"tensor 'w_hh' has shape \[3, 3\] in the file, but the spec gives \[48, 16\]"):
        load(path)
    save(_trained("gru"), path)
    _rewrite(path, tensors=lambda t: {k: v for k, v in t.items() if k != "b_ih"})
    with pytest.raises(FileFormatError, match="missing: \\['b_ih'\\]"):
        load(path)
    save(_trained("gru"), path)
    from safetensors.torch import load_file, save_file

    spec = read_spec(path)
    save_file(load_file(str(path)), str(path), metadata={"topowire": json.dumps({**spec, "version": 99})})
    with pytest.raises(FileFormatError, match="model format version 99 is not supported"):
        load(path)
    save_file(load_file(str(path)), str(path), metadata={"topowire": json.dumps({**spec, "arch": {"kind": "gru", "colour": 1}})})
    with pytest.raises(FileFormatError, match="cannot rebuild a model"):
        load(path)
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(FileFormatError, match="no topowire spec"):
        load(path)
    path.write_bytes(b"\x00\x01 not safetensors at all")
    with pytest.raises(FileFormatError, match="is not a safetensors file"):
        load(path)
    with pytest.raises(FileFormatError, match="does not exist"):
        load(tmp_path / "missing.safetensors")


def _reber_batch():
    from topowire.data import make_task

    task = make_task("reber", seed=0, n_train=8, n_test=16)
    return task.x_test[:7], task.len_test[:7]  # 7 padded strings of 5..14 symbols


SEQUENCE_ARCHS = {
    "rnn-tanh": Arch("rnn-tanh", d_in=7, d_out=2), "rnn-relu": Arch("rnn-relu", d_in=7, d_out=2),
    "lstm": Arch("lstm", d_in=7, d_out=2), "gru": Arch("gru", d_in=7, d_out=2),
    "wcrnn": Arch("wcrnn", residual="rotational", r=0.9, phi=0.3, d_in=7, d_out=2),
    "layered": Arch("layered", cell="lstm", d_in=7, d_out=2),
    "layered-sources": Arch("layered", cell="gru", input_width="sources", d_in=7, d_out=2),
}


def _sequence_model(name):
    net = compile(ba_graph(15, 2, seed=0), SEQUENCE_ARCHS[name], seed=3).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    return net


@pytest.mark.parametrize("name", list(SEQUENCE_ARCHS))
def test_torchscript_reads_each_sequence_at_its_own_length(name, tmp_path):
    # exported from a batch of 2 sequences of 4 steps, run on 7 padded Reber strings of 14
    net = _sequence_model(name)
    export_torchscript(net, tmp_path / "m.pt", batch=2, seq_len=4)
    program = torch.jit.load(str(tmp_path / "m.pt"))
    x, lengths = _reber_batch()
    want = net(x, lengths)
    assert float((net(x) - want).abs().max()) > 1e-3  # the lengths matter for this batch
    torch.testing.assert_close(program(x, lengths), want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(program(x[:1, :5], lengths[:1].clamp_max(5)), net(x[:1, :5], lengths[:1].clamp_max(5)))


@pytest.mark.parametrize("name", list(SEQUENCE_ARCHS))
def test_onnx_reads_each_sequence_at_its_own_length(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net = _sequence_model(name)
    export_onnx(net, tmp_path / "m.onnx", batch=2, seq_len=4)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [i.name for i in sess.get_inputs()] == ["x", "lengths"]
    x, lengths = _reber_batch()
    got = sess.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    np.testing.assert_allclose(got, net(x, lengths).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_static_models_export_as_before(tmp_path):
    net = _trained("iterative").eval()
    export_torchscript(net, tmp_path / "m.pt", batch=3)
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "m.pt"))(_x("iterative")), net(_x("iterative")))
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    export_onnx(net, tmp_path / "m.onnx", batch=3)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    got = sess.run(None, {"x": _x("iterative").numpy()})[0]
    np.testing.assert_allclose(got, net(_x("iterative")).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_cli_compile_and_export(tmp_path, capsys):
    pop = tmp_path / "pop.jsonl"
    write_population(Population((GRAPH, ba_graph(12, 3, seed=1))), pop)
    out = tmp_path / "models"
    assert main(["compile", str(pop), "--kind", "gru", "--orientation", "dag", "--inputs", "3", "--d-in", "5", "-o", str(out)]) == 0
    import pandas as pd

    index = pd.read_csv(out / "index.csv")
    assert list(index["id"]) == [GRAPH.id, ba_graph(12, 3, seed=1).id]
    model = load(out / index["file"][0])
    assert model.arch.d_in == 5 and len(model.wiring.inputs) == 3
    assert index["params_graph"][0] == 3 * GRAPH.n_edges
    assert main(["export", str(out / index["file"][0]), "--format", "torchscript", "--seq-len", "4",
                 "-o", str(tmp_path / "m.pt")]) == 0
    assert torch.jit.load(str(tmp_path / "m.pt"))(torch.zeros(3, 9, 5), torch.tensor([9, 2, 5])).shape == (3, 2)


@pytest.mark.parametrize("argv, message", [
    (["compile", "{pop}", "--kind", "transformer", "-o", "{out}"], "unknown kind 'transformer': expected one of iterative"),
    (["compile", "{pop}", "--orientation", "sideways", "-o", "{out}"], "unknown orientation 'sideways': expected one of dag"),
    (["compile", "{cyclic}", "--kind", "iterative", "--orientation", "as-is", "--inputs", "all",
      "--outputs", "all", "-o", "{out}"], "has the cycle"),
    (["export", "{bad}", "--format", "onnx", "-o", "{out}.onnx"], "is not a safetensors file"),
    (["export", "{model}", "--format", "onnx", "--seq-len", "0", "-o", "{out}.onnx"], "seq_len must be an integer with 1 <= seq_len <= 1000000, got seq_len = 0"),
])
def test_cli_compile_export_bad_input(argv, message, tmp_path, capsys):
    from topowire.topology import Topology

    files = {"pop": tmp_path / "p.jsonl", "cyclic": tmp_path / "c.jsonl", "bad": tmp_path / "bad.safetensors",
             "model": tmp_path / "m.safetensors", "out": tmp_path / "out"}
    write_population(Population((GRAPH,)), files["pop"])
    write_population(Population((Topology(3, [[0, 1], [1, 2], [2, 0]], directed=True),)), files["cyclic"])
    files["bad"].write_bytes(b"junk")
    save(_trained("gru"), files["model"])
    before = set(tmp_path.rglob("*"))
    code = main([a.format(**files) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert set(tmp_path.rglob("*")) == before


def test_mlp_graph_compiles_to_the_mlp(tmp_path):
    net = compile(mlp_graph([4, 5, 2]), "iterative", orientation="as-is", d_in=4, d_out=2)
    save(net, tmp_path / "m.safetensors")
    assert load(tmp_path / "m.safetensors").iterations == 3
