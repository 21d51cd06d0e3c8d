"""A target is one class: registered from here, it compiles, packs, trains, saves and loads
through the library with no other change."""

import math

import pytest
import torch

from topowire.compiler import TARGETS, Arch, Target, compile, register_target
from topowire.compiler.export import load, save
from topowire.compiler.functional import readout
from topowire.compiler.modules import stacked, wiring_masks
from topowire.data import make_task
from topowire.topology import er_graph
from topowire.train import TrainConfig, train_population


class Echo(Target):
    """A toy static target: the data reach the input neurons, spread one step along the
    graph, and are read out: ``z = tanh(U x); y = R tanh(z + (W*M) z) + b``."""

    kinds = ("toy-echo",)
    doc = "a toy: one step of the graph"
    layout = {"weight": "neurons+cols", "w_in": "neurons", "readout": "cols", "readout_bias": "none"}

    def initial_tensors(self, wiring, arch, seed, backend="dense"):
        gen, n = torch.Generator().manual_seed(seed), wiring.n_neurons
        m = wiring_masks(wiring)
        return {"weight": torch.randn(n, n, generator=gen) * m["mask"] / math.sqrt(n),
                "w_in": torch.randn(n, arch.d_in, generator=gen) * m["in_mask"][:, None] / math.sqrt(arch.d_in),
                "readout": torch.randn(arch.d_out, n, generator=gen) * m["out_mask"] / math.sqrt(n),
                "readout_bias": torch.zeros(arch.d_out)}

    def forward(self, module, x, lengths=None, all_steps=False):
        z = torch.tanh(torch.einsum("bd,pnd->pbn", x, stacked(module, "w_in")))
        w = stacked(module, "weight") * stacked(module, "mask")
        z = torch.tanh(z + torch.einsum("pbn,pmn->pbm", z, w))
        return readout(z, stacked(module, "readout"), stacked(module, "out_mask"), stacked(module, "readout_bias"))

    def parameter_counts(self, wiring, arch, seed=0):
        graph, interface = wiring.n_edges, len(wiring.inputs) * arch.d_in + len(wiring.outputs) * arch.d_out
        return {"graph": graph, "interface": interface, "bias": arch.d_out, "total": graph + interface + arch.d_out}


@pytest.fixture
def echo():
    target = register_target(Echo())
    yield target
    del TARGETS["toy-echo"]


def test_a_target_of_one_class_trains_packed_and_round_trips_through_a_file(echo, tmp_path):
    pop = [er_graph(10 + i, 0.3, seed=i) for i in range(4)]
    task = make_task("mnist", n_train=256, n_test=128)
    frame = train_population(pop, Arch("toy-echo"), task, TrainConfig(epochs=3, lr=0.01, replicates=2),
                             store=tmp_path / "r.db", keep_weights=True)
    assert len(frame) == 8 and (frame["status"] == "ok").all() and frame["test_acc"].mean() > 0.3  # chance: 0.1
    arch, by_id = Arch("toy-echo", d_in=784, d_out=10), {t.id: t for t in pop}
    assert list(frame["params"]) == [compile(by_id[t], arch).parameter_counts()["total"] for t in frame["topology_id"]]
    from topowire.study import trained_model

    net = trained_model(tmp_path / "r.db", frame["run_id"].iloc[0], pop[0], 1)
    save(net, tmp_path / "echo.safetensors", topology=pop[0])
    again = load(tmp_path / "echo.safetensors")
    x = task.x_test[:16]
    assert type(again).__name__ == "CompiledNet" and again.arch.kind == "toy-echo"
    torch.testing.assert_close(again(x), net(x))
    assert (net(x).argmax(1) == task.y_test[:16]).float().mean() > 0.3
