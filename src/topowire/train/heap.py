"""Memory while packs train: freed memory kept in the process's heap (glibc), and Python's
cyclic garbage collector paused.

glibc's ``malloc`` serves a block of more than 32 MiB (less, at first) with its own
``mmap`` and gives it back to the system when freed, so the next tensor of that size
starts on fresh pages and faults each 4 KiB of them in again. A pack's training step frees
and allocates such tensors (sequence buffers, gate gradients, products of ``[P, B, W]``)
every step: measured with ``perf stat`` on a 2-core Intel Xeon, 256 GRUs for one Reber
epoch at batch 128 took 3.5 million page faults and a quarter of their time in the
kernel. :func:`kept_heap` has ``malloc`` serve every block from its heap and never trim it
while a pack trains (``mallopt``: ``M_MMAP_MAX`` 0, ``M_TRIM_THRESHOLD`` -1), so freed
blocks are reused warm. On leaving, the heap is trimmed (``malloc_trim``: the memory goes
back) and ``malloc`` set where glibc's own moving thresholds end once a 32 MiB block has been
freed (blocks above 32 MiB mapped, the heap trimmed above 64 MiB free): setting any of them
stops glibc moving them, and its small starting values (128 KiB) would then trim and refault
a process's heap at every step. The peak memory is the same (packs are still
cut by ``--memory-mb``); what changes is that it is held for the pack's whole training --
and, in the local executor, across all its packs: trimmed after each pack, the next one
faulted its working set in again (256 GRUs, one Reber epoch at batch 128, AMD EPYC: 282
thousand page faults per epoch trimmed per pack, 99 thousand held across the packs).

``TOPOWIRE_KEEP_HEAP=0`` turns it off; elsewhere than glibc it does nothing.

:func:`paused_gc` stops Python's cyclic collector while a pack trains: each of its runs,
set off by the objects a training step allocates, walks the process's tracked objects
(torch's, pandas', scikit-learn's), 6% of a GRU epoch at batch 32 (AMD EPYC, one thread).
A training step leaves no reference cycles behind (the tests check it), so nothing waits
for the collector but what other code makes meanwhile, collected once it runs again.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import platform
import sys
import threading

__all__ = ["kept_heap", "paused_gc"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc's mallopt parameters (malloc.h)
#: After: glibc's default count of mapped blocks, and its moving thresholds' ceilings.
_AFTER = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 64 * 2**20))
_LOCK = threading.Lock()
_HOLDERS = [0]  # packs training in this process now: the settings go back when the last ends
_PAUSED = [0, False]  # holders of paused_gc, and whether the collector was on before the first


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, where it is this process's C library and has ``mallopt``; else None."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def kept_heap():
    """Inside, freed memory stays in the heap for reuse (see the module); yields whether it
    does (False: not glibc, or ``TOPOWIRE_KEEP_HEAP=0``). Nests and may be entered from
    several threads at once: the heap is trimmed and the settings changed back when the
    last one leaves."""
    libc = _libc() if os.environ.get("TOPOWIRE_KEEP_HEAP", "1") != "0" else None
    if libc is None:
        yield False
        return
    def keep():
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, -1)

    def give_back():
        for param, value in _AFTER:
            libc.mallopt(param, value)
        libc.malloc_trim(0)

    with _held(_HOLDERS, keep, give_back):
        yield True


@contextlib.contextmanager
def _held(holders: list, first, last):
    """Counts ``holders[0]`` in and out (under one lock, across threads): ``first()`` as the
    first comes in, ``last()`` as the last leaves."""
    with _LOCK:
        if holders[0] == 0:
            first()
        holders[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            holders[0] -= 1
            if holders[0] == 0:
                last()


@contextlib.contextmanager
def paused_gc():
    """Inside, Python's cyclic garbage collector does not run (see the module). Nests and may
    be entered from several threads at once: the collector is switched back on, if it was
    on, when the last one leaves."""
    def pause():
        _PAUSED[1] = gc.isenabled()
        gc.disable()

    with _held(_PAUSED, pause, lambda: _PAUSED[1] and gc.enable()):
        yield
