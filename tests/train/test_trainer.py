import numpy as np
import pytest
import torch

from topowire.compiler import Arch, wire
from topowire.compiler.pack import PackedPopulation
from topowire.data import make_task
from topowire.errors import ParameterError
from topowire.seeds import init_seed
from topowire.topology import ba_graph, complete_graph, er_graph, ws_graph
from topowire.train import TrainConfig, train_pack, train_population

GRAPHS = [ws_graph(12, 4, 0.3, seed=i) for i in range(3)] + [ba_graph(10 + i, 2, seed=i) for i in range(3)] + \
    [er_graph(14, 0.3, seed=i) for i in range(2)]
ARCH = Arch("gru", orientation="both", inputs="all", outputs="all")


@pytest.fixture(scope="module")
def reber_small():
    return make_task("reber", n_train=128, n_test=64, seed=0)


def _pack(graphs, seeds, arch=ARCH, task=None):
    arch = arch.replace(d_in=task.d_in, d_out=task.d_out)
    return PackedPopulation([wire(g, arch.orientation, arch.inputs, arch.outputs) for g in graphs], arch, seeds)


def test_a_model_trained_in_a_pack_of_8_equals_it_trained_alone(reber_small):
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2)
    seeds = list(range(100, 108))
    packed = _pack(GRAPHS, seeds, task=reber_small)
    train_pack(packed, reber_small, config)
    for i in (0, 5):
        alone = _pack([GRAPHS[i]], [seeds[i]], task=reber_small)
        train_pack(alone, reber_small, config)
        for name, t in alone.model_tensors(0).items():
            torch.testing.assert_close(packed.model_tensors(i)[name], t, rtol=1e-4, atol=1e-4)


def test_an_exploding_model_is_frozen_and_flagged_the_others_untouched(reber_small):
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2, clip=None)
    arch = ARCH.replace(kind="rnn-relu")
    seeds = list(range(8))
    lr = torch.full((8,), 1e-2)
    lr[3] = 1e4  # an exploding learning rate for model 3
    packed = _pack(GRAPHS, seeds, arch, reber_small)
    res = train_pack(packed, reber_small, config, lr=lr)
    assert res[3]["status"] == "diverged" and [r["status"] for i, r in enumerate(res) if i != 3] == ["ok"] * 7
    assert all(bool(t.isfinite().all()) for t in packed.model_tensors(3).values())  # as before it diverged
    others = [i for i in range(8) if i != 3]
    without = _pack([GRAPHS[i] for i in others], [seeds[i] for i in others], arch, reber_small)
    train_pack(without, reber_small, config, lr=lr[others])
    for j, i in enumerate(others):
        for name, t in without.model_tensors(j).items():
            torch.testing.assert_close(packed.model_tensors(i)[name], t, rtol=1e-5, atol=1e-6)


def test_a_model_finite_in_training_but_not_on_the_test_set_is_diverged_never_ok(reber_small):
    from dataclasses import replace

    x_test = reber_small.x_test.clone()
    x_test[0, 0, 0] = float("nan")  # one test string the models cannot score
    task = replace(reber_small, x_test=x_test)
    res = train_pack(_pack(GRAPHS[:2], [0, 1], task=task), task, TrainConfig(epochs=1, batch_size=32))
    assert [r["status"] for r in res] == ["diverged", "diverged"]
    assert all(r["diverged_epoch"] == 0 for r in res)


def test_small_gru_population_learns_reber():
    # negatives are single in-alphabet edits, so the automaton must really be tracked; a
    # dense torch.nn.GRU(16) needs about 10 epochs of 1,000 strings for 90%
    task = make_task("reber", n_train=4000, n_test=400, seed=0)
    config = TrainConfig(epochs=6, batch_size=32, lr=1e-2)
    graphs = [complete_graph(16), ws_graph(24, 10, 0.3, seed=0), ba_graph(24, 6, seed=0), er_graph(24, 0.5, seed=0)]
    frame = train_population(graphs, ARCH, task, config)
    assert (frame["status"] == "ok").all()
    assert frame["test_acc"].mean() >= 0.95, frame["test_acc"].tolist()


def test_replicates_seeds_and_rows(reber_small):
    config = TrainConfig(epochs=1, batch_size=64, replicates=3, seed=5)
    frame = train_population(GRAPHS[:2], ARCH, reber_small, config)
    assert len(frame) == 6 and frame.groupby("topology_id").size().tolist() == [3, 3]
    assert frame["init_seed"].nunique() == 6
    assert frame["init_seed"].tolist()[0] == init_seed(5, frame["topology_id"][0], frame["replicate"][0])
    assert {"test_acc", "test_loss", "train_loss", "params", "seconds", "curves"} <= set(frame.columns)
    assert len(frame["curves"][0]["test_acc"]) == 1


def test_chunking_by_memory_keeps_results(reber_small):
    config = TrainConfig(epochs=1, batch_size=64, lr=1e-2)
    one = train_population(GRAPHS, ARCH, reber_small, config)
    many = train_population(GRAPHS, ARCH, reber_small, TrainConfig(epochs=1, batch_size=64, lr=1e-2, chunk_size=3))
    one, many = one.set_index("topology_id"), many.set_index("topology_id")
    np.testing.assert_allclose(many.loc[one.index, "test_loss"], one["test_loss"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("task_name, kind", [("reber-next", "gru"), ("adding", "lstm"), ("mnist", "iterative")])
def test_other_tasks_train(task_name, kind):
    task = make_task(task_name, n_train=64, n_test=32, seed=0)
    arch = Arch(kind, orientation="both" if kind != "iterative" else "dag",
                inputs="all", outputs="all" if kind != "iterative" else "sinks")
    frame = train_population(GRAPHS[:2], arch, task, TrainConfig(epochs=1, batch_size=32))
    assert ((frame["test_acc"] >= 0) & (frame["test_acc"] <= 1)).all()
    assert np.isfinite(frame["test_loss"]).all()


def test_bad_combinations(reber_small):
    with pytest.raises(ParameterError, match="needs a sequence task"):
        train_population(GRAPHS[:1], ARCH, make_task("mnist", n_train=8, n_test=8), TrainConfig(epochs=1))
    with pytest.raises(ParameterError, match="needs a static task"):
        train_population(GRAPHS[:1], Arch("iterative"), reber_small, TrainConfig(epochs=1))
    with pytest.raises(ParameterError, match="epochs must be an integer with 1 <= epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ParameterError, match="unknown optimizer 'lbfgs'"):
        TrainConfig(optimizer="lbfgs")


def cuda(test):
    """A test that needs a CUDA GPU: marked (``pytest -m cuda``) and skipped without one."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))


@cuda
def test_cuda_forward_backward_equals_cpu(reber_small):
    packed = _pack(GRAPHS, list(range(8)), task=reber_small)
    x, lengths = reber_small.x_train[:32], reber_small.len_train[:32]
    out_cpu = packed(x, lengths)
    out_cpu.sum().backward()
    grads_cpu = {n: p.grad.clone() for n, p in packed.named_parameters()}
    packed.zero_grad()
    gpu = packed.to("cuda")
    out_gpu = gpu(x.cuda(), lengths.cuda())
    out_gpu.sum().backward()
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-4)
    for n, p in gpu.named_parameters():
        torch.testing.assert_close(p.grad.cpu(), grads_cpu[n], rtol=1e-4, atol=1e-4)


@cuda
def test_bf16_autocast_trains_to_the_same_accuracy():
    task = make_task("reber", n_train=1000, n_test=200, seed=0)
    graphs = [ws_graph(16, 4, 0.3, seed=i) for i in range(4)]
    base = TrainConfig(epochs=4, batch_size=32, lr=1e-2, device="cuda")
    fp32 = train_population(graphs, ARCH, task, base)["test_acc"].mean()
    bf16 = train_population(graphs, ARCH, task, TrainConfig(**{**base.to_dict(), "bf16": True}))["test_acc"].mean()
    assert abs(fp32 - bf16) <= 0.01


@pytest.mark.parametrize("kind", ["gru", "layered"])
def test_train_module_is_train_pack_on_a_pack_of_one(reber_small, kind):
    """One training loop: a model trained alone ends with the weights it gets in a pack of one."""
    from topowire.compiler import compile
    from topowire.compiler.compile import pack
    from topowire.train import train_module

    arch = Arch(kind, d_in=reber_small.d_in, d_out=reber_small.d_out)
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2)
    graph = er_graph(12, 0.3, seed=4)
    alone = compile(graph, arch, seed=11)
    res = train_module(alone, reber_small, config)
    packed = pack([graph], arch, [11])
    res_packed = train_pack(packed, reber_small, config)[0]
    trained = packed.unpack(0).state_dict()
    for name, t in alone.state_dict().items():
        assert torch.equal(t, trained[name]), name
    assert res["test_acc"] == res_packed["test_acc"] and res["curves"] == res_packed["curves"]


def test_any_executor_gives_the_local_results(reber_small):
    """The executor seam: packs run in another order (as a cluster would) give the same rows."""
    from topowire.train.executors import LocalExecutor

    class Reversed:
        calls = 0

        def map(self, jobs, task, on_step=None):
            for job in reversed(list(jobs)):
                Reversed.calls += 1
                yield job, job.run(task)

    config = TrainConfig(epochs=1, batch_size=32, lr=1e-2, replicates=2, chunk_size=3)
    local = train_population(GRAPHS[:4], ARCH, reber_small, config, executor=LocalExecutor())
    other = train_population(GRAPHS[:4], ARCH, reber_small, config, executor=Reversed())
    assert Reversed.calls == 3  # 8 models in packs of 3
    key = ["topology_id", "replicate"]
    a, b = local.sort_values(key).reset_index(drop=True), other.sort_values(key).reset_index(drop=True)
    assert a["init_seed"].tolist() == b["init_seed"].tolist()
    np.testing.assert_allclose(a["test_acc"], b["test_acc"], rtol=0, atol=1e-6)
    with pytest.raises(ParameterError, match="unknown executor 'slurm'"):
        train_population(GRAPHS[:2], ARCH, reber_small, config, executor="slurm")


def test_a_random_dag_model_is_rebuilt_by_compile_with_its_init_seed():
    from topowire.compiler import compile
    from topowire.train import train_module
    from topowire.train.trainer import prepare_arch

    task = make_task("reber", n_train=64, n_test=32, seed=0)
    config = TrainConfig(epochs=1, batch_size=32, seed=3)
    graph = er_graph(12, 0.3, seed=9)
    arch = prepare_arch(Arch("gru", orientation="random-dag"), task, config)
    row = train_population([graph], arch, task, config).iloc[0]
    alone = train_module(compile(graph, arch, seed=int(row["init_seed"])), task, config)
    assert alone["test_acc"] == pytest.approx(row["test_acc"], abs=1e-6)
    assert alone["train_loss"] == pytest.approx(row["train_loss"], rel=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "wcrnn"])
def test_fused_steps_train_as_the_eager_path(kind, reber_small):
    # each time step as one torch.compile program (or eager, with a warning, where compiling fails)
    import warnings

    config = TrainConfig(epochs=1, batch_size=32, lr=1e-2)
    arch = ARCH.replace(kind=kind)
    eager = _pack(GRAPHS[:4], [1, 2, 3, 4], arch, reber_small)
    fused = _pack(GRAPHS[:4], [1, 2, 3, 4], arch, reber_small)
    want = train_pack(eager, reber_small, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = train_pack(fused, reber_small, config.replace(fused=True))
    np.testing.assert_allclose([r["test_loss"] for r in got], [r["test_loss"] for r in want], rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(eager.named_parameters(), fused.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)
    assert config.replace(fused=True).run_key() == config.run_key()  # the same run either way
    import shutil

    from topowire.compiler import functional

    if shutil.which("g++") or shutil.which("c++"):  # with a compiler, the compiled path was the one tested
        assert not functional._EAGER_ONLY, functional._EAGER_ONLY


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_pack_trained_as_sub_packs_equals_it_trained_as_one_program(kind, reber_small):
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2)
    arch = ARCH.replace(kind=kind)
    one, sub = (_pack(GRAPHS, range(8), arch, reber_small) for _ in range(2))
    want = train_pack(one, reber_small, config.replace(sub_pack=0))
    got = train_pack(sub, reber_small, config.replace(sub_pack=3))
    assert [r["curves"] for r in got] == [r["curves"] for r in want]
    for (name, a), b in zip(one.named_parameters(), sub.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)
    assert config.replace(sub_pack=3).run_key() == config.run_key()  # the same run either way


def test_bucketed_batches_train_and_name_another_run(reber_small):
    config = TrainConfig(epochs=1, batch_size=32, lr=1e-2)
    rows = train_pack(_pack(GRAPHS[:2], [1, 2], ARCH, reber_small), reber_small, config.replace(bucket=True))
    plain = train_pack(_pack(GRAPHS[:2], [1, 2], ARCH, reber_small), reber_small, config)
    assert all(r["status"] == "ok" for r in rows) and rows[0]["train_loss"] != plain[0]["train_loss"]
    assert config.replace(bucket=True).hash != config.hash and "bucket" not in config.run_key()


def test_clip_zero_is_off_and_names_the_same_run():
    assert TrainConfig(clip=0).clip is None and TrainConfig(clip=0.0).hash == TrainConfig(clip=None).hash
    assert TrainConfig(clip=0).hash != TrainConfig().hash
    with pytest.raises(ParameterError, match="clip"):
        TrainConfig(clip=-1.0)


def test_results_line_counts_every_status():
    import pandas as pd

    from topowire.train import results_line

    frame = pd.DataFrame({"run_id": "r1", "status": ["ok", "ok", "diverged", "failed"],
                          "test_acc": [0.75, 0.85, 0.5, None]})
    assert results_line(frame) == "4 models in run r1: 2 ok, 1 diverged, 1 failed; mean test accuracy 0.800"
    none_ok = frame.assign(status=["diverged", "failed", "diverged", "failed"])
    assert results_line(none_ok) == "4 models in run r1: 0 ok, 2 diverged, 2 failed; no model trained ok"


def test_progress_moves_inside_a_pack(reber_small):
    # one pack of 4 models, 2 epochs of 4 steps (128 examples, batch 32): each step moves 4/8 of a model
    calls = []
    config = TrainConfig(epochs=2, batch_size=32, replicates=1, chunk_size=4)
    train_population(GRAPHS[:4], ARCH, reber_small, config, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    inside = [d for d, _ in calls[1:-1]]
    # every step but the last, before the pack's rows arrive: the pack shows whole once they are stored
    assert inside == [4 * s / 8 for s in range(1, 8)]


def _reads_while_training(monkeypatch, n_train: int) -> int:
    """Reads from tensors back to Python (what stalls a GPU) while a pack of 3 GRUs trains
    2 epochs on ``n_train`` Reber strings at batch 32."""
    import topowire.compiler.targets.recurrent as cells

    task = make_task("reber", n_train=n_train, n_test=64, seed=0)
    packed = _pack(GRAPHS[:3], [0, 1, 2], task=task)
    import topowire.compiler.functional as functional
    from topowire.train import trainer

    # as on an accelerator: the forward reads neither the shortest length back nor whether inputs are one-hot
    monkeypatch.setattr(cells, "first_masked_step", lambda lengths, t: t if lengths is None else 0)
    monkeypatch.setattr(functional, "one_hot_symbols", lambda x: None)
    from topowire.train import optim

    for module in (trainer, optim):  # the trainer's and the clipping's choices, as on an accelerator
        monkeypatch.setattr(module, "reads_are_free", lambda device: False)
    reads = []
    for method in ("item", "tolist", "cpu", "__bool__", "__int__", "__float__", "__index__"):
        original = getattr(torch.Tensor, method)
        monkeypatch.setattr(torch.Tensor, method, lambda self, *a, _f=original, **k: reads.append(1) or _f(self, *a, **k))
    from topowire.compiler import kernels

    with kernels.use_kernels(False):  # the path an accelerator runs (the fused kernels are the CPU's)
        train_pack(packed, task, TrainConfig(epochs=2, batch_size=32, lr=1e-2, clip=1.0))
    monkeypatch.undo()
    return len(reads)


def test_no_step_reads_a_tensor_back(monkeypatch):
    # 4 steps an epoch or 16: the same reads, once per epoch (losses, accuracies, who is alive)
    few, many = _reads_while_training(monkeypatch, 128), _reads_while_training(monkeypatch, 512)
    assert few == many and few <= 2 * 4 + 1


def test_the_first_masked_step_is_read_on_the_host_only():
    from topowire.compiler.targets.recurrent import first_masked_step

    assert first_masked_step(torch.tensor([5, 3, 7]), 7) == 3 and first_masked_step(None, 7) == 7
    assert first_masked_step(torch.tensor([5, 3, 7], device="meta"), 7) == 0  # a device tensor is not read


def test_the_default_device_is_the_gpu_when_there_is_one_and_names_no_other_run(reber_small):
    from topowire.train.config import check_device

    assert TrainConfig().device == "auto"
    assert check_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    auto = train_population(GRAPHS[:2], ARCH, reber_small, TrainConfig(epochs=1, batch_size=64))
    cpu = train_population(GRAPHS[:2], ARCH, reber_small, TrainConfig(epochs=1, batch_size=64, device="cpu"))
    assert auto["run_id"].iloc[0] == cpu["run_id"].iloc[0]  # where a run trains is not what it is
    if not torch.cuda.is_available():
        assert auto["test_acc"].tolist() == cpu["test_acc"].tolist()


def test_pack_budget_follows_the_device_when_not_given(monkeypatch):
    from topowire.train.config import CPU_PACK_MB, pack_budget

    assert pack_budget(300, 80 * 2**30) == 300 * 2**20  # given: used as it is, on any device
    assert pack_budget(None, 80 * 2**30) == 20 * 2**30  # a CUDA device: a quarter of its free memory
    assert pack_budget(None, None) == CPU_PACK_MB * 2**20 == 2**30  # the CPU
    monkeypatch.setenv("TOPOWIRE_MAX_MEMORY_MB", "256")
    assert pack_budget(None, None) == 256 * 2**20  # within the memory limit


def test_packs_are_cut_by_the_budget_on_the_cpu(reber_small):
    from topowire.train.trainer import pack_jobs

    same_width = [ws_graph(12, 4, 0.3, seed=i) for i in range(6)]
    arch = ARCH.replace(d_in=reber_small.d_in, d_out=reber_small.d_out)
    default = pack_jobs(same_width, arch, reber_small, TrainConfig(device="cpu"))
    assert [len(j.specs) for j in default] == [6]  # six small GRUs fit 1,024 MiB
    tight = pack_jobs(same_width, arch, reber_small, TrainConfig(device="cpu", memory_mb=1))
    assert len(tight) > 1 and sum(len(j.specs) for j in tight) == 6


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn-tanh"])
def test_a_pack_trained_with_the_fused_kernels_trains_as_the_torch_path(kind, reber_small):
    from topowire.compiler import kernels

    if kernels.library() is None:
        pytest.skip("the kernels need a C compiler")
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2, stability=0.9)  # with the stability projection
    arch = ARCH.replace(kind=kind)
    reference, fused = (_pack(GRAPHS[:5], range(5), arch, reber_small) for _ in range(2))
    with kernels.use_kernels(False):
        want = train_pack(reference, reber_small, config)
    got = train_pack(fused, reber_small, config)
    assert [r["status"] for r in got] == [r["status"] for r in want] == ["ok"] * 5
    np.testing.assert_allclose([r["test_loss"] for r in got], [r["test_loss"] for r in want], rtol=1e-4)
    for (name, a), b in zip(reference.named_parameters(), fused.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)


def test_a_step_on_the_kernels_is_one_training_step_call_per_pack_and_batch(monkeypatch, reber_small):
    # forward, loss and backward in one kernel call (sequence_loss), where the task is a
    # classification or a regression read out at the last step; per-step targets are scored
    # from the outputs
    from topowire.compiler import kernels, sequence

    if kernels.library() is None:
        pytest.skip("the kernels need a C compiler")
    calls = []
    loss = sequence.sequence_loss
    monkeypatch.setattr(sequence, "sequence_loss", lambda *a: calls.append(a[0]) or loss(*a))
    train_pack(_pack(GRAPHS[:3], range(3), task=reber_small), reber_small, TrainConfig(epochs=2, batch_size=32))
    assert calls == ["gru"] * 8  # 128 strings: 4 batches an epoch
    calls.clear()
    adding = make_task("adding", n_train=64, n_test=32, seed=0)  # a regression read out at the last step
    train_pack(_pack(GRAPHS[:2], range(2), ARCH.replace(kind="lstm"), adding), adding,
               TrainConfig(epochs=1, batch_size=32))
    assert calls == ["lstm"] * 2
    calls.clear()
    nxt = make_task("reber-next", n_train=64, n_test=32, seed=0)
    train_pack(_pack(GRAPHS[:2], range(2), task=nxt), nxt, TrainConfig(epochs=1, batch_size=32))
    assert calls == []


def test_a_batch_of_sequences_is_ordered_longest_first_and_holds_the_same_examples(reber_small):
    from topowire.train.trainer import task_batch

    idx = torch.arange(40, 8, -1)
    xb, yb, lb, mask = task_batch(reber_small, "train", idx, torch.device("cpu"))
    assert (lb[:-1] >= lb[1:]).all() and lb.tolist() == sorted(reber_small.len_train[idx].tolist(), reverse=True)
    order = torch.argsort(reber_small.len_train[idx], descending=True, stable=True)  # ties keep the batch's order
    torch.testing.assert_close(xb, reber_small.x_train[idx[order]][:, :xb.shape[1]], rtol=0, atol=0)
    want_y = reber_small.y_train[idx[order]]
    assert torch.equal(yb, want_y[:, :yb.shape[1]] if reber_small.per_step else want_y)
