"""Atomic file output: write to a temporary name beside the target, then rename.

A failure while writing (an exception, a crash, a full disk) leaves no half-written file
under the target name: either the old content or the complete new content is there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "atomic_open", "atomic_dir", "check_table_path", "read_table", "write_table"]


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
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
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
