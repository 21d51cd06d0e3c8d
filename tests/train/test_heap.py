"""Freed memory kept in the heap while packs train: page faults, nesting, the switch."""

import resource
import sys
import threading

import pytest
import torch

from topowire.train import heap
from topowire.train.heap import kept_heap

glibc = pytest.mark.skipif(heap._libc() is None, reason="mallopt is glibc's")
SIZE = 64 * 2**20  # above glibc's largest mmap threshold (32 MiB): served by mmap by default


def _faults_of_a_second_tensor(size: int = SIZE) -> int:
    """Minor page faults of writing a fresh ``size``-byte tensor after a few were freed (the
    first may not fit the first freed block: an aligned request asks a little more)."""
    for _ in range(3):
        torch.ones(size // 4)  # allocated, written, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(size // 4)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_a_freed_block_is_reused_warm_inside_and_given_back_after(monkeypatch):
    monkeypatch.delenv("TOPOWIRE_KEEP_HEAP", raising=False)
    pages = SIZE // resource.getpagesize()
    assert _faults_of_a_second_tensor() > pages // 2  # glibc's default: every page faulted in again
    with kept_heap() as kept:
        assert kept
        assert _faults_of_a_second_tensor() < pages // 10  # the freed block, its pages still mapped
    # defaults back and the heap trimmed: a size never freed inside is mmap'd, faulted in each time
    assert _faults_of_a_second_tensor(SIZE * 3 // 2) > pages // 2


@glibc
def test_the_defaults_come_back_when_the_last_holder_leaves():
    with kept_heap():
        entered, leave = threading.Event(), threading.Event()

        def other():
            with kept_heap():
                entered.set()
                leave.wait()

        thread = threading.Thread(target=other)
        thread.start()
        entered.wait()
        with kept_heap():
            pass  # a nested holder leaves: the others still hold
        leave.set()
        thread.join()
        assert heap._HOLDERS[0] == 1
        assert _faults_of_a_second_tensor() < SIZE // resource.getpagesize() // 10
    assert heap._HOLDERS[0] == 0


def test_the_switch_and_other_c_libraries(monkeypatch):
    monkeypatch.setenv("TOPOWIRE_KEEP_HEAP", "0")
    with kept_heap() as kept:
        assert not kept
    monkeypatch.delenv("TOPOWIRE_KEEP_HEAP")
    with kept_heap() as kept:
        assert kept == (sys.platform.startswith("linux") and heap._libc() is not None)
