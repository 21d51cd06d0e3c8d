import pytest
import torch

from topowire.compiler import compile
from topowire.data import TASKS, encode_strings, make_task
from topowire.errors import ParameterError
from topowire.topology import ws_graph


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """A tiny folder of Fashion-MNIST's IDX files, named by its environment variable."""
    from tests.data.test_mnist import _write_mnist

    images, labels = _write_mnist(tmp_path, n=60)
    monkeypatch.setenv("TOPOWIRE_FASHION_MNIST_DIR", str(tmp_path))
    return images, labels


def test_every_task_builds(fake_fashion):
    for name in TASKS:
        t = make_task(name, n_train=40 if "mnist" in name else None, n_test=20 if "mnist" in name else None)
        assert t.x_train.shape[-1] == t.d_in and len(t.x_train) == len(t.y_train)
        assert t.sequence == (t.len_train is not None)


def test_encoding_and_padding():
    x, lengths = encode_strings(["BTXSE", "BPVVE", "BTSSXXTVVE"])
    assert x.shape == (3, 10, 7) and lengths.tolist() == [5, 5, 10]
    assert torch.all(x[0, 5:] == 0) and torch.all(x[0, :5].sum(-1) == 1)


def test_classification_reads_the_last_real_step_never_padding():
    task = make_task("reber", n_train=40, n_test=20)
    net = compile(ws_graph(16, 4, 0.2, seed=0), "gru", d_in=7, d_out=2)
    y = net(task.x_test, task.len_test)
    poisoned = task.x_test.clone()
    for i, n in enumerate(task.len_test.tolist()):
        poisoned[i, n:] = 5.0  # garbage in every padding step
    torch.testing.assert_close(net(poisoned, task.len_test), y)


def test_unknown_task():
    with pytest.raises(ParameterError, match="unknown task 'sudoku'"):
        make_task("sudoku")


def test_mnist_subsets_are_random_not_the_first_digits():
    # the bundled subset is stored sorted by digit: a prefix would hold one class
    task = make_task("smnist-rows", n_train=200, n_test=100, seed=0)
    assert task.y_train.unique().numel() == 10 and task.y_test.unique().numel() == 10
    again = make_task("smnist-rows", n_train=200, n_test=100, seed=0)
    assert torch.equal(task.x_train, again.x_train)
    assert not torch.equal(task.y_train, make_task("smnist-rows", n_train=200, n_test=100, seed=1).y_train)


def test_a_task_of_one_spec_registers_and_trains():
    """A task is a spec and a builder, registered from anywhere (here a test)."""
    import torch

    from topowire.compiler import Arch
    from topowire.data import TASKS, Task, TaskSpec, register_task
    from topowire.topology import er_graph
    from topowire.train import TrainConfig, train_population

    def build(spec, *, seed, n_train, n_test):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n_train + n_test, 6, generator=g)
        y = (x[:, :3].sum(1) > 0).long()  # which half-space the first three inputs fall in
        return Task(spec.name, spec.objective, x[:n_train], y[:n_train], None, x[n_train:], y[n_train:], None, 6, 2)

    register_task(TaskSpec("toy-halfspace", "the sign of a sum", "classification", False, build, chance=0.5,
                           sizes=(512, 256)))
    try:
        task = make_task("toy-halfspace", seed=3)
        assert (len(task.y_train), len(task.y_test)) == (512, 256) and task.ref.n_train == 512
        frame = train_population([er_graph(12, 0.3, seed=s) for s in range(3)], Arch("iterative"), "toy-halfspace",
                                 TrainConfig(epochs=5, lr=0.02))
        assert (frame["status"] == "ok").all() and frame["test_acc"].min() > 0.8
    finally:
        del TASKS["toy-halfspace"]


def test_fashion_mnist_reads_its_folder_and_names_the_package_when_absent(fake_fashion, monkeypatch):
    from topowire.errors import DataError

    images, labels = fake_fashion
    task = make_task("fashion-mnist")
    assert task.x_train.shape == (60, 784) and task.d_out == 10 and TASKS["fashion-mnist"].chance == 0.1
    torch.testing.assert_close(task.x_train, torch.from_numpy(images.reshape(60, 784) / 255).float())
    assert task.y_test.tolist() == labels[:2].tolist()
    monkeypatch.delenv("TOPOWIRE_FASHION_MNIST_DIR")
    monkeypatch.setattr("shutil.which", lambda _: None)  # no dpkg to ask
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        make_task("fashion-mnist")


def test_fashion_mnist_from_the_debian_package_is_whole():
    from topowire.data.mnist import find_fashion_mnist
    from topowire.errors import DataError

    try:
        find_fashion_mnist()
    except DataError:
        pytest.skip("the Debian package dataset-fashion-mnist is not installed")
    task = make_task("fashion-mnist")
    assert task.x_train.shape == (60000, 784) and task.x_test.shape == (10000, 784)
    assert torch.bincount(task.y_train).tolist() == [6000] * 10


def test_digits_split_is_seeded_disjoint_and_learnable():
    from topowire.compiler import Arch
    from topowire.topology import complete_graph
    from topowire.train import TrainConfig, train_population

    task = make_task("digits", seed=0)
    assert task.x_train.shape == (1437, 64) and task.x_test.shape == (360, 64)
    assert 0 <= float(task.x_train.min()) and float(task.x_train.max()) == 1.0
    train_rows = {tuple(r) for r in task.x_train.tolist()}
    assert sum(tuple(r) in train_rows for r in task.x_test.tolist()) < 10  # a few duplicate images in the data
    assert torch.equal(make_task("digits", seed=0).y_test, task.y_test)
    assert not torch.equal(make_task("digits", seed=1).y_test, task.y_test)
    frame = train_population([complete_graph(8)], Arch("relational", width=32, depth=1), task,
                             TrainConfig(epochs=2, lr=0.01))
    assert float(frame["test_acc"].iloc[0]) > 0.8
