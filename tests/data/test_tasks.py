import pytest
import torch

from topowire.compiler import compile
from topowire.data import TASKS, encode_strings, make_task
from topowire.errors import ParameterError
from topowire.topology import ws_graph


def test_every_task_builds():
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
