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
import fnmatch
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "atomic_open", "atomic_dir", "check_output", "check_output_folder", "foreign_entries",
           "mark_folder", "MARKER", "FOLDERS", "write_failure", "check_nesting", "read_text", "check_table_path",
           "process_alive", "read_table", "write_table"]


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


#: The file in every folder topowire writes that says so: ``{"kind": ..., "files": [...]}``.
MARKER = ".topowire-folder.json"


def _is_temporary(name: str) -> bool:
    """A temporary of :func:`atomic_path` / :func:`atomic_dir` (``.NAME.pid<digits>.*``)."""
    return _TEMPORARY.fullmatch(name) is not None


_TEMPORARY = re.compile(r"\.(.+)\.pid(\d+)\.[^/]*")


def _marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


#: The folders topowire writes, by kind: whether one is replaced as a whole, and the names
#: (globs) it held before :data:`MARKER` existed -- the first of which it always held.
FOLDERS = {
    "report": (True, ("index.html", "*.png")),
    "models": (True, ("index.csv", "*.safetensors")),
    "study": (False, ("runs.db", "runs.db-*", "*.jsonl", "*.csv", "predictor.skops*", "best_model.*", "report")),
    "search": (False, ("runs.db", "runs.db-*", "*.jsonl", "search.csv", "search.png", "summary.json")),
}


def foreign_entries(folder: str | os.PathLike[str], kind: str) -> list[str]:
    """The entries of an existing ``folder`` that topowire did not write as a folder of ``kind``.

    A folder topowire wrote holds :data:`MARKER`, naming its kind and its files; anything
    else in it (temporaries of a topowire write aside) is foreign. A folder without the
    marker (written before it existed) counts as topowire's when it holds the first of the
    kind's former names (:data:`FOLDERS`) and nothing but those names.
    """
    folder = Path(folder)
    entries = sorted(p.name for p in folder.iterdir() if p.name != MARKER and not _is_temporary(p.name))
    marker = _marker(folder)
    if marker is None:
        legacy = FOLDERS[kind][1]
        former = [e for e in entries if any(fnmatch.fnmatchcase(e, g) for g in legacy)]
        return [e for e in entries if e not in former] if legacy[0] in former else entries
    if marker.get("kind") != kind:
        return entries
    return [e for e in entries if e not in set(marker["files"])]


def check_output_folder(output: str | os.PathLike[str], *inputs: str | os.PathLike[str] | None,
                        kind: str) -> None:
    """Refuse a folder topowire must not write into.

    Never an output folder: a folder that is or holds one of ``inputs``, the current
    directory or one above it, the home directory, the root. An existing folder must be
    one topowire wrote as a folder of ``kind`` (see :func:`foreign_entries`): one replaced
    as a whole (a report, compiled models) holds nothing else; a study folder, where only
    topowire's own files are rewritten, may hold other files beside them once marked.

    Raises
    ------
    ParameterError
        Naming the folder and why it is refused.
    """
    from topowire.errors import ParameterError

    out = Path(output)
    where = out.resolve()
    for given in inputs:
        if given is not None and (where == Path(given).resolve() or where in Path(given).resolve().parents):
            raise ParameterError(f"output folder {str(out)!r} holds the input {str(given)!r}: it would be replaced; "
                                 "choose another output path")
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if where == cwd or where in cwd.parents:
        raise ParameterError(f"output folder {str(out)!r} is the current directory or holds it: its files would be "
                             "replaced; name a new folder")
    if where == home or where == Path(where.anchor):
        raise ParameterError(f"output folder {str(out)!r} is the {'home' if where == home else 'root'} directory; "
                             "name a new folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise ParameterError(f"output folder {str(out)!r} exists and is not a folder")
    replaced = FOLDERS[kind][0]
    foreign = foreign_entries(out, kind)
    if foreign and (replaced or _marker(out) is None):
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ParameterError(f"output folder {str(out)!r} holds {foreign[0]!r}{more}, which topowire did not write "
                             f"there: it would be {'deleted' if replaced else 'overwritten'}; name a new or "
                             "empty folder")


def mark_folder(folder: str | os.PathLike[str], kind: str, files: Sequence[str]) -> None:
    """Write :data:`MARKER` into ``folder``: topowire wrote it, as a folder of ``kind`` holding ``files``."""
    with atomic_open(Path(folder) / MARKER) as fh:
        json.dump({"kind": kind, "files": sorted(files)}, fh)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_CLEARED: set[Path] = set()


def _clear_stale(target: Path) -> None:
    """Remove the temporaries in ``target``'s folder left by processes that no longer run,
    whatever output they were for (once per folder and process: a folder of many files
    is not listed again for every write)."""
    folder = target.parent.resolve()
    if folder in _CLEARED:
        return
    _CLEARED.add(folder)
    for tmp in folder.glob(".*.pid*"):
        match = _TEMPORARY.fullmatch(tmp.name)
        if match and int(match[2]) != os.getpid() and not process_alive(int(match[2])):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (True when it is not ours to signal;
    a zombie -- killed, not yet reaped by its parent -- is not running)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


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


_OS_ERROR = re.compile(r"os error (\d+)|\[Errno (\d+)\]|No space left on device|file write failed|Disk quota exceeded")


def write_failure(exc: BaseException, target: str | os.PathLike[str]) -> OSError | None:
    """An exception raised while writing ``target``, as an OSError naming it -- or None when
    it is not a failure of the file system. Writers outside Python's I/O (safetensors,
    torch's serialisers) report a full disk as their own exception types; their messages
    carry the OS error."""
    import errno as errnos

    if isinstance(exc, OSError) and exc.errno is not None:
        return OSError(exc.errno, exc.strerror or str(exc), str(target))
    match = _OS_ERROR.search(str(exc)) if isinstance(exc, Exception) else None
    if match is None:
        return None
    code = int(match[1] or match[2]) if (match[1] or match[2]) else errnos.ENOSPC
    return OSError(code, os.strerror(code), str(target))


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
        failure = write_failure(exc, target)
        if failure is not None and getattr(exc, "filename", None) in (None, str(tmp_path), tmp):
            raise failure from None
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
def atomic_dir(path: str | os.PathLike[str], kind: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` on success, and is
    removed on any failure (nothing half-written is left under either name).

    The folder is marked as topowire's folder of ``kind`` (:func:`mark_folder`), and an
    existing ``path`` is replaced only if it is one (:func:`check_output_folder`): a folder
    holding anything else is refused before any work, and again before it is replaced.
    """
    target = Path(path)
    check_output_folder(target, kind=kind)
    tmp = Path(_temporary(target, tempfile.mkdtemp))
    try:
        yield tmp
        mark_folder(tmp, kind, [p.name for p in tmp.iterdir()])
        os.chmod(tmp, 0o777 & ~_umask())
        if target.is_dir():
            check_output_folder(target, kind=kind)
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        failure = write_failure(exc, target)
        if failure is not None and str(tmp) in str(getattr(exc, "filename", None) or tmp):
            raise failure from None
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


#: Significant digits of the floats in the CSV tables topowire writes.
CSV_DIGITS = 6


def write_table(frame, path: str | os.PathLike[str], *, index: bool = True) -> None:
    """Write a table atomically as CSV or Parquet, by suffix: CSV floats to
    ``CSV_DIGITS`` significant digits (what a float32 result or a feature carries that a
    reader can use), Parquet's at full precision."""
    from topowire.errors import ParameterError

    path = Path(path)
    suffix = check_table_path(path)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=index, float_format=f"%.{CSV_DIGITS}g")
        else:
            try:
                frame.to_parquet(tmp, index=index)
            except ImportError:
                raise ParameterError("writing .parquet needs pyarrow (pip install pyarrow); use .csv") from None


#: How deep brackets may nest in a file topowire parses (JSON, TOML): deeper input is refused
#: before the parser sees it (Python's parsers recurse once per level).
MAX_NESTING = 64
_STRINGS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')


def check_nesting(text: str, what: str, *, comments: bool = False) -> None:
    """Refuse ``text`` whose ``[`` and ``{`` nest deeper than :data:`MAX_NESTING`, before parsing it.

    Brackets inside strings (and TOML comments, with ``comments``) do not count.

    Raises
    ------
    FileFormatError
        Naming ``what`` and the depth.
    """
    import numpy as np

    from topowire.errors import FileFormatError

    if "[" * (MAX_NESTING + 1) not in text and text.count("[") + text.count("{") <= MAX_NESTING:
        return
    bare = _STRINGS.sub(lambda m: "" if comments or not m[0].startswith("#") else m[0], text)
    codes = np.frombuffer(bare.encode("utf-8", "replace"), dtype=np.uint8)
    step = np.isin(codes, (91, 123)).astype(np.int64) - np.isin(codes, (93, 125))
    depth = int(np.cumsum(step).max(initial=0))
    if depth > MAX_NESTING:
        raise FileFormatError(f"{what} nests brackets {depth} deep; topowire reads at most {MAX_NESTING} levels")


def read_text(path: str | os.PathLike[str], what: str, *, comments: bool = False) -> str:
    """A UTF-8 text file topowire parses (JSON, TOML), its nesting bounded (:func:`check_nesting`).

    Raises
    ------
    FileFormatError
        ``what`` and the path: missing, not UTF-8, or nested too deep.
    """
    from topowire.errors import FileFormatError

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{what} {str(path)!r} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{what} {str(path)!r} is not valid UTF-8 (byte {exc.start})") from None
    check_nesting(text, f"{what} {str(path)!r}", comments=comments)
    return text


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises KeyboardInterrupt while the command runs (main thread, default handler only)."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    own = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    previous = signal.signal(signal.SIGTERM, interrupt) if own else None
    try:
        yield
    finally:
        if own:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def library_warnings():
    """Warnings raised while a command runs are held back: a command that fails prints its
    one error line alone, and one that succeeds one ``note:`` line on them (the first, and
    how many)."""
    import sys
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        yield
    if caught:
        first = caught[0]
        text = str(first.message).strip().splitlines()[0] if str(first.message).strip() else ""
        more = f" (and {len(caught) - 1} more)" if len(caught) > 1 else ""
        print(f"note: a library warned: {first.category.__name__}: {text}{more}", file=sys.stderr)
