"""Atomic file output: write to a temporary name beside the target, then rename.

A failure while writing (an exception, a crash, a full disk) leaves no half-written file
under the target name: either the old content or the complete new content is there. The
temporary name carries the writer's process id, so temporaries of a process that was
killed are removed by the next write beside them. Files and folders get the modes of any
new file (``0o666`` / ``0o777`` less the umask), and errors name the target, never the
temporary.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "atomic_open", "atomic_dir", "check_output", "check_table_path", "process_alive",
           "read_table", "write_table"]


def check_output(output: str | os.PathLike[str] | None, *inputs: str | os.PathLike[str] | None,
                 replaced_folder: bool = False) -> None:
    """Refuse an output path that is (through links, ``./`` or relative parts) one of the
    inputs or, when it is a folder replaced as a whole (``replaced_folder``), holds one.

    Raises
    ------
    ParameterError
        Naming the output and the input it would overwrite.
    """
    from topowire.errors import ParameterError

    if output is None:
        return
    out = Path(output)
    for given in inputs:
        if given is None:
            continue
        src = Path(given)
        same = out.exists() and src.exists() and os.path.samefile(out, src)
        if same or out.resolve() == src.resolve():
            raise ParameterError(f"output {str(out)!r} is also an input ({str(src)!r}): it would be overwritten; "
                                 "choose another output path")
        if replaced_folder and out.resolve() in src.resolve().parents:
            raise ParameterError(f"output folder {str(out)!r} holds the input {str(src)!r}: it would be replaced; "
                                 "choose another output path")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_CLEARED: set[tuple[Path, str]] = set()


def _clear_stale(target: Path) -> None:
    """Remove temporaries beside ``target`` left by processes that no longer run (once per
    target and process: a folder of many files is not listed again for every write)."""
    key = (target.parent.resolve(), target.name)
    if key in _CLEARED:
        return
    _CLEARED.add(key)
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.pid*.*"):
        pid = tmp.name[len(target.name) + 5:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (True when it is not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temporary(target: Path, make) -> str:
    """A fresh temporary beside ``target`` made by ``make(prefix=, dir=)`` (mkstemp or
    mkdtemp), its name carrying this process id; errors name the target."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale(target)
        return make(prefix=f".{target.name}.pid{os.getpid()}.", dir=target.parent)
    except OSError as exc:
        raise _naming(target, exc) from None


def _naming(target: Path, exc: OSError) -> OSError:
    """The same error, naming the target instead of a temporary."""
    return OSError(exc.errno, exc.strerror or str(exc), str(target))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        The final destination. Its parent folder is created if needed.

    Yields
    ------
    pathlib.Path
        A fresh temporary file name in the same folder (so the rename is atomic). The
        caller writes the complete content there.
    """
    target = Path(path)
    fd, tmp = _temporary(target, lambda **kw: tempfile.mkstemp(suffix=".tmp", **kw))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (str(tmp_path), tmp):
            raise _naming(target, exc) from None
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` only once closed cleanly.

    Parameters
    ----------
    path : path-like
        The final destination.
    mode : {"w", "wb"}
        Text or binary mode.
    encoding : str, optional
        Text encoding (ignored in binary mode).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` on success, and is
    removed on any failure (nothing half-written is left under either name)."""
    target = Path(path)
    tmp = Path(_temporary(target, tempfile.mkdtemp))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_table(path: str | os.PathLike[str]):
    """A CSV or Parquet table (pandas), or FileFormatError naming the file."""
    import pandas as pd

    from topowire.errors import FileFormatError

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"table {str(path)!r} does not exist")
    try:
        table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise FileFormatError(f"cannot read table {str(path)!r}: {exc}") from None
    if table.empty:
        raise FileFormatError(f"table {str(path)!r} is empty")
    return table


def check_table_path(path: str | os.PathLike[str]) -> str:
    """The table format of an output path (``.csv`` or ``.parquet``), or ParameterError."""
    from topowire.errors import ParameterError

    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ParameterError(f"output {str(path)!r} must end in .csv or .parquet")
    return suffix


def write_table(frame, path: str | os.PathLike[str], *, index: bool = True) -> None:
    """Write a table atomically as CSV (full float precision) or Parquet, by suffix."""
    from topowire.errors import ParameterError

    path = Path(path)
    suffix = check_table_path(path)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=index, float_format="%.17g")
        else:
            try:
                frame.to_parquet(tmp, index=index)
            except ImportError:
                raise ParameterError("writing .parquet needs pyarrow (pip install pyarrow); use .csv") from None
