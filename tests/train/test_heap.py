"""Freed memory kept in the heap while packs train: page faults, nesting, the switch.

Page faults are counted in a fresh process each (``getrusage``): glibc's heap is the
process's, and a long-lived one (the test session's) may have its heap placed where it
cannot grow in place.
"""

import contextlib
import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from topowire.compiler import Arch
from topowire.compiler.compile import pack
from topowire.data import make_task
from topowire.topology import ws_graph
from topowire.train import TrainConfig, heap, train_pack
from topowire.train.heap import kept_heap, paused_gc
from topowire.train.spec import prepare_arch

glibc = pytest.mark.skipif(heap._libc() is None, reason="mallopt is glibc's")
ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def another_holder():
    """Another thread inside :func:`kept_heap` until this context ends."""
    entered, leave = threading.Event(), threading.Event()

    def other():
        with kept_heap():
            entered.set()
            leave.wait()

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait()
    try:
        yield
    finally:
        leave.set()
        thread.join()


PRELUDE = """
import contextlib, json, resource, torch
from topowire.train import heap
from topowire.train.heap import kept_heap
from tests.train.test_heap import another_holder
SIZE = 64 * 2**20  # above glibc's largest mmap threshold (32 MiB): served by mmap by default
PAGES = SIZE // resource.getpagesize()

def faults(size=SIZE):
    # minor page faults of writing a fresh size-byte tensor after a few were freed (the first
    # may not fit the first freed block: an aligned request asks a little more)
    for _ in range(3):
        torch.ones(size // 4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(size // 4)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TOPOWIRE_KEEP_HEAP": "1"}, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc
def test_a_freed_block_is_reused_warm_inside_and_given_back_after():
    out = _run("""
before = faults()
with kept_heap() as kept:
    inside = faults()
after = faults(SIZE * 3 // 2)  # a size never freed inside: mapped again, as glibc does
print(json.dumps({"pages": PAGES, "before": before, "kept": kept, "inside": inside, "after": after}))
""")
    pages = out["pages"]
    assert out["kept"]
    assert out["before"] > pages // 2  # glibc's default: every page faulted in again
    assert out["inside"] < pages // 10  # the freed block, its pages still mapped
    assert out["after"] > pages // 2  # the settings back and the heap trimmed


@glibc
def test_the_heap_stays_kept_while_any_holder_is_inside():
    out = _run("""
other = contextlib.ExitStack()
with kept_heap():
    other.enter_context(another_holder())
leave_first = faults()  # the main thread left; the other thread still holds
other.close()
print(json.dumps({"pages": PAGES, "held": leave_first, "holders": heap._HOLDERS[0], "after": faults(SIZE * 3 // 2)}))
""")
    assert out["held"] < out["pages"] // 10 and out["holders"] == 0 and out["after"] > out["pages"] // 2


def test_holders_are_counted_over_nesting_and_threads():
    start = heap._HOLDERS[0]
    with kept_heap() as kept:
        with another_holder():
            with kept_heap():
                assert heap._HOLDERS[0] == start + 3 * kept
            assert heap._HOLDERS[0] == start + 2 * kept
        assert heap._HOLDERS[0] == start + kept
    assert heap._HOLDERS[0] == start


def test_the_switch_and_other_c_libraries(monkeypatch):
    monkeypatch.setenv("TOPOWIRE_KEEP_HEAP", "0")
    with kept_heap() as kept:
        assert not kept and heap._HOLDERS[0] == 0
    monkeypatch.delenv("TOPOWIRE_KEEP_HEAP")
    with kept_heap() as kept:
        assert kept == (sys.platform.startswith("linux") and heap._libc() is not None)


def test_paused_gc_nests_and_gives_the_collector_back_as_it_was():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # an outer holder is still inside
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()


def test_a_pack_trains_with_the_collector_paused_and_leaves_no_cycles():
    task = make_task("reber", n_train=96, n_test=32, seed=0)
    graphs = [ws_graph(10, 4, 0.3, seed=s) for s in range(3)]
    seen = []
    gc.collect()
    train_pack(pack(graphs, prepare_arch(Arch("gru"), task), seeds=range(3)), task,
               TrainConfig(epochs=2, batch_size=32, device="cpu"), on_step=lambda: seen.append(gc.isenabled()))
    assert seen == [False] * 6 and gc.isenabled()
    assert gc.collect() == 0  # no reference cycle left for the paused collector
