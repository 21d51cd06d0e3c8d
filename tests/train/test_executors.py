"""Executors: where packs run, and with how many threads."""

import pytest
import torch

from topowire.cli import main
from topowire.errors import ParameterError
from topowire.train import heap
from topowire.train.executors import LocalExecutor, RayExecutor, connect_executor


class _Job:
    """A pack job that records torch's thread count, and the heap's holders, while it runs."""

    seen: list[int] = []
    holders: list[int] = []

    def run(self, task):
        _Job.seen.append(torch.get_num_threads())
        _Job.holders.append(heap._HOLDERS[0])
        return []


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    _Job.seen, _Job.holders = [], []
    yield
    torch.set_num_threads(before)


def test_local_threads_hold_while_packs_train_and_are_restored(two_threads):
    assert [rows for _, rows in LocalExecutor(threads=1).map([_Job(), _Job()], task=None)] == [[], []]
    assert _Job.seen == [1, 1] and torch.get_num_threads() == 2


def test_local_threads_are_restored_when_the_consumer_stops_early(two_threads):
    packs = LocalExecutor(threads=1).map([_Job(), _Job(), _Job()], task=None)
    next(packs)
    assert torch.get_num_threads() == 1
    packs.close()
    assert _Job.seen == [1] and torch.get_num_threads() == 2


def test_local_packs_share_one_kept_heap_given_back_once_at_the_end(two_threads, monkeypatch):
    trims = []
    monkeypatch.setattr(heap, "_libc", lambda: type("libc", (), {"mallopt": lambda *a: 1,
                                                                   "malloc_trim": lambda pad: trims.append(pad)}))
    monkeypatch.setenv("TOPOWIRE_KEEP_HEAP", "1")
    start = heap._HOLDERS[0]
    packs = LocalExecutor().map([_Job(), _Job(), _Job()], task=None)
    next(packs)
    next(packs)
    assert trims == [] and heap._HOLDERS[0] == start + 1  # held between packs, not trimmed after each
    list(packs)
    assert _Job.holders == [start + 1] * 3 and trims == [0] and heap._HOLDERS[0] == start


def test_unset_threads_leave_torch_as_it_is(two_threads):
    list(LocalExecutor().map([_Job()], task=None))
    assert _Job.seen == [2]


def test_connect_executor_hands_threads_to_either_executor(monkeypatch):
    assert connect_executor("local", threads=1).threads == 1 and connect_executor("local").threads is None
    monkeypatch.setattr(RayExecutor, "connect", lambda self: None)
    assert connect_executor("ray", threads=2).threads == 2 and connect_executor("ray").threads == 1


def test_bad_threads_are_one_line_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(ParameterError, match="threads must be an integer >= 1"):
        LocalExecutor(threads=0)
    (tmp_path / "p.jsonl").write_text("")
    assert main(["train", str(tmp_path / "p.jsonl"), "--db", str(tmp_path / "r.db"), "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("error: Invalid value for '--threads': threads must be an integer with "
                                               "1 <= threads <= 1024 (torch threads), got threads = 0")
    assert not (tmp_path / "r.db").exists()
