"""Building and loading the fused kernels: the cache, the fallback, the switch, their math."""

import ctypes
import os
import sys
import warnings

import pytest
import torch

from topowire.compiler import kernels

needs_compiler = pytest.mark.skipif(kernels.library() is None, reason="the kernels need a C compiler")


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty kernel cache and no library loaded yet in this process (restored after)."""
    monkeypatch.setenv("TOPOWIRE_CACHE", str(tmp_path))
    kernels.library.cache_clear()
    yield tmp_path
    kernels.library.cache_clear()


@needs_compiler
def test_a_build_is_cached_by_its_source_and_flags_and_reused(fresh):
    assert kernels.library() is not None
    built = list((fresh / "kernels").glob("cells-*.so"))
    assert len(built) == 1 and not list((fresh / "kernels").glob("tmp*"))  # renamed into place, nothing left
    stamp = built[0].stat().st_mtime_ns
    kernels.library.cache_clear()
    assert kernels.library() is not None and built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


def test_no_compiler_warns_once_and_the_torch_path_runs(fresh, monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(kernels.shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        assert kernels.library() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.library() is None and not kernels.enabled()  # once: the result is kept


def test_a_failing_build_warns_with_the_compilers_words_and_falls_back(fresh, monkeypatch, tmp_path):
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'kernels.c: error: no such luck' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.warns(RuntimeWarning, match="no such luck"):
        assert kernels.library() is None
    assert not list((fresh / "kernels").glob("cells-*.so"))


@needs_compiler
def test_a_compiler_without_openmp_builds_the_library_without_it(fresh, monkeypatch, tmp_path):
    real, calls = kernels.os.environ.get("CC") or kernels.shutil.which("cc") or kernels.shutil.which("gcc"), tmp_path / "calls"
    no_openmp = tmp_path / "cc"
    no_openmp.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                         f'case " $* " in *" -fopenmp "*) echo "unsupported: -fopenmp" >&2; exit 1;; esac\n'
                         f'exec {real} "$@"\n')
    no_openmp.chmod(0o755)
    monkeypatch.setenv("CC", str(no_openmp))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.library() is not None
    tried = calls.read_text().splitlines()
    assert len(tried) == 2 and "-fopenmp" in tried[0].split() and "-fopenmp" not in tried[1].split()
    assert len(list((fresh / "kernels").glob("cells-*.so"))) == 1


class _DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p),
                ("saddr", ctypes.c_void_p)]


def _openmp_of(library: ctypes.CDLL) -> str:
    """The file of the OpenMP runtime that ``library`` resolves (``dlsym`` searches its own
    dependencies), by ``dladdr`` of its ``omp_get_max_threads``."""
    info = _DlInfo()
    assert ctypes.CDLL(None).dladdr(ctypes.cast(library.omp_get_max_threads, ctypes.c_void_p), ctypes.byref(info))
    return os.path.realpath(info.fname.decode())


@needs_compiler
@pytest.mark.skipif(not (sys.platform.startswith("linux") and torch.backends.openmp.is_available()),
                    reason="torch without OpenMP, or not Linux (dladdr)")
def test_the_blocks_run_in_torchs_own_openmp_runtime():
    # Another runtime (scikit-learn bundles its own) may be loaded too; the kernels' must be
    # torch's, or its workers would compete with torch's pool for the cores.
    assert _openmp_of(kernels.library()) == _openmp_of(ctypes.CDLL(torch._C.__file__))


@needs_compiler
def test_the_switches(monkeypatch):
    assert kernels.enabled()
    with kernels.use_kernels(False):
        assert not kernels.enabled()
    monkeypatch.setenv("TOPOWIRE_KERNELS", "0")
    assert not kernels.enabled()


def test_every_kernels_arguments_are_read_from_its_prototype():
    sig = kernels.signatures("void f(int64_t n, const float *x, float *y);\nvoid g(int64_t a) {\n")
    assert sig == {"f": [kernels.ctypes.c_int64, kernels.ctypes.c_void_p, kernels.ctypes.c_void_p],
                   "g": [kernels.ctypes.c_int64]}
    # an argument naming a macro stands for the macro's text, continued lines and all
    sig = kernels.signatures("#define ARGS int64_t a, \\\n    const float *b\nvoid h(ARGS, int64_t c);\n")
    assert sig == {"h": [kernels.ctypes.c_int64, kernels.ctypes.c_void_p, kernels.ctypes.c_int64]}
    source = kernels.signatures(kernels.SOURCE.read_text())
    assert {"gru_forward", "gru_backward", "lstm_forward", "lstm_backward", "act_forward", "act_backward", "gru_train",
            "lstm_train", "act_train"} <= set(source)
    assert len(source["gru_backward"]) == 36  # 23 arguments of every sequence, 13 of its own
    assert len(source["gru_train"]) == 39  # and a training step's: 23, the bias, 11 of the head, 4 gradients


@needs_compiler
@pytest.mark.parametrize("which, reference", [(0, torch.exp), (1, torch.sigmoid), (2, torch.tanh)])
def test_exp_sigmoid_and_tanh_are_within_a_few_ulp_of_torchs(which, reference):
    x = torch.cat([torch.linspace(-100, 100, 20001), torch.linspace(-1, 1, 20001), torch.tensor([0.0, 1e-30, -1e-8])])
    if which == 0:
        x = x.clamp(-80, 80)  # float32's exp range
    y = torch.empty_like(x)
    kernels.library().unary_f(x.numel(), which, kernels.pointer(x), kernels.pointer(y))
    want = reference(x.double())
    torch.testing.assert_close(y.double(), want, rtol=4e-7, atol=1e-38)
