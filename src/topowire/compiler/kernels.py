"""The recurrent cells' and relational layers' kernels of ``kernels.c``, compiled on first use
with this machine's C compiler.

A recurrent step in torch is a dense masked product and a dozen passes over ``[P, B, G*N]``
tensors; here a whole sequence is one kernel call forward and one backward (driven by
:mod:`topowire.compiler.sequence`): each model runs its steps one after another, summing over
the graph's edges only and doing the gate arithmetic while the sums are in registers, a
pack's models split over torch's thread count. A training step read out at the last state
is one call, each model's forward, loss and backward in turn.
The relational layers' block product (:mod:`topowire.compiler.blocks`) is here too: small
register-tiled GEMMs over a graph's ``(A + I)`` blocks, split the same way. Both run in the
OpenMP pool torch's own ops use (built with ``-fopenmp``, the library links the ``libgomp``
torch has already loaded; where that flag fails it builds without, and the kernels run on
one thread). The library is plain C (with GCC's vector extensions, which Clang reads too)
loaded with :mod:`ctypes` -- no torch headers, so it builds in about a second -- with the
vector flags of this CPU (``torch.backends.cpu.get_cpu_capability()``), and is cached under
``$TOPOWIRE_CACHE`` (default ``~/.cache/topowire``) by a hash of its source, compiler and flags.

Where there is no compiler, or building fails, topowire warns once and runs the torch path;
``TOPOWIRE_KERNELS=0`` or :func:`use_kernels` (False) chooses the torch path on purpose. The two
agree to float rounding (tests compare them); each is deterministic.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["library", "use_kernels", "enabled", "pointer", "signatures", "vector_floats", "scratch_floats",
           "train_floats"]

SOURCE = Path(__file__).with_name("kernels.c")

_VECTOR_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}
_LIBS = ["-lm"]  # expf, logf: the training step's cross-entropy
_ENABLED = contextvars.ContextVar("topowire_kernels", default=True)


@contextlib.contextmanager
def use_kernels(on: bool = True):
    """Inside, recurrent cells and relational layers run with the kernels (True, where they
    build) or the torch path (False)."""
    token = _ENABLED.set(bool(on))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def enabled() -> bool:
    """Whether a recurrent forward here should use the kernels: asked for, not switched off by
    ``TOPOWIRE_KERNELS=0``, and built."""
    return _ENABLED.get() and os.environ.get("TOPOWIRE_KERNELS", "1") != "0" and library() is not None


def _cache_dir() -> Path:
    root = os.environ.get("TOPOWIRE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "topowire")
    return Path(root) / "kernels"


def _build(source: str, compiler: str, flags: list[str]) -> Path:
    """The shared library of :data:`SOURCE` (whose text is ``source``) for ``compiler`` and
    ``flags``, compiled unless cached; written under a temporary name and renamed into place,
    so concurrent processes never load half a file."""
    key = hashlib.sha256("\0".join([source, compiler, *flags, *_LIBS, platform.machine()]).encode()).hexdigest()
    target = _cache_dir() / f"cells-{key[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        subprocess.run([compiler, *flags, "-o", str(out), str(SOURCE), *_LIBS], check=True, capture_output=True,
                       text=True, timeout=300)
        os.replace(out, target)
    return target


def _build_either(source: str, compiler: str, choices: list[list[str]]) -> Path:
    """The library built with the first of ``choices`` (flag lists) that compiles; the last
    one's error where none does."""
    for flags in choices[:-1]:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return _build(source, compiler, flags)
    return _build(source, compiler, choices[-1])


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernels, built on first use; None (with one warning) where they cannot be."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        warnings.warn("no C compiler found: recurrent cells and relational layers run on the torch path "
                      "(slower, same results to rounding)", RuntimeWarning, stacklevel=2)
        return None
    flags = ["-O3", "-std=c99", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-shared", "-fPIC",
             *_VECTOR_FLAGS.get(torch.backends.cpu.get_cpu_capability(), [])]
    source = SOURCE.read_text()
    try:
        lib = ctypes.CDLL(str(_build_either(source, compiler, [flags + ["-fopenmp"], flags])))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc) or type(exc).__name__).strip().splitlines()
        warnings.warn(f"the kernels did not build ({detail[-1][:200] if detail else exc!r}); recurrent "
                      "cells and relational layers run on the torch path", RuntimeWarning, stacklevel=2)
        return None
    for name, argtypes in signatures(source).items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = None
    return lib


def signatures(source: str) -> dict[str, list]:
    """Every exported kernel's ctypes argument types, read from its C prototype
    (``void name(...)``: a pointer argument is ``c_void_p``, any other ``c_int64``; an
    argument that names an object-like macro, such as ``STEP_ARGS``, stands for its text)."""
    source = source.replace("\\\n", " ")
    macros = dict(re.findall(r"^#define (\w+) (.*)$", source, flags=re.M))
    out = {}
    for name, args in re.findall(r"^void (\w+)\(([^)]*)\)", source, flags=re.M):
        args = ",".join(macros.get(a.strip(), a) for a in args.split(","))
        out[name] = [ctypes.c_void_p if "*" in a else ctypes.c_int64 for a in args.split(",")]
    return out


def pointer(tensor: torch.Tensor | None, offset: int = 0) -> int | None:
    """The address of ``tensor``'s element ``offset`` (counted from its first), None for no tensor."""
    return None if tensor is None else tensor.data_ptr() + tensor.element_size() * offset


@functools.cache
def vector_floats() -> int:
    """Floats per vector of the built kernels (16 with AVX-512, 8 with AVX2): the lanes a
    recurrent cell's batch is padded to, and one more than the most symbols it picks inputs from."""
    out = ctypes.c_int64()
    library().vector_floats(ctypes.addressof(out))
    return out.value


def scratch_floats(most: int, gates: int, n: int, rows: int) -> int:
    """Floats of one thread's scratch in a recurrent kernel call (``model_scratch`` in
    kernels.c): for models of at most ``most`` edges, ``gates`` gates and ``n`` units, and
    ``rows`` table rows of input gradient (0 where the input is no table)."""
    out = ctypes.c_int64()
    library().scratch_floats(most, gates, n, rows, ctypes.addressof(out))
    return out.value


def train_floats(steps: int, n: int, lanes: int, gates: int, saved: int, memory: bool, outputs: int) -> int:
    """Floats of one thread's work buffer in a training step's kernel call (``train_floats`` in
    kernels.c): one model's states, saved rows and gradient buffers for ``steps`` steps of
    ``n`` units over ``lanes`` lanes (``gates`` gates, ``saved`` rows per unit, a cell state
    with ``memory``) and its readout's ``outputs`` logits."""
    out = ctypes.c_int64()
    library().train_floats(steps, n, lanes, gates, saved, int(memory), outputs, ctypes.addressof(out))
    return out.value
