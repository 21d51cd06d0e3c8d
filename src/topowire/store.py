"""The results store: SQLite in WAL mode with a versioned schema (DESIGN §9).

Tables: ``meta`` (schema version), ``topologies`` (one row per graph), ``runs`` (one row
per run id: arch, task, training config), ``results`` (one row per (run, topology,
replicate): status, metrics, curves, parameters, seconds), ``claims`` (the models a
process is training now: owner and heartbeat). The results of a pack are written in one
transaction, so a run killed at any moment leaves whole packs; started again, it skips
what is done.

Many processes may train one run on one store at once (:mod:`topowire.claims`): a result
written ends its model's claim in the same transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from topowire.errors import FileFormatError, TopowireError

__all__ = ["Store", "SCHEMA_VERSION", "StoreError"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topologies (
    id TEXT PRIMARY KEY, family TEXT NOT NULL, params TEXT NOT NULL, seed INTEGER,
    n INTEGER NOT NULL, n_edges INTEGER NOT NULL, directed INTEGER NOT NULL, edges TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, arch TEXT NOT NULL, task TEXT NOT NULL, config TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT (datetime('now')), spec TEXT);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id), topology_id TEXT NOT NULL REFERENCES topologies(id),
    replicate INTEGER NOT NULL, init_seed INTEGER NOT NULL, status TEXT NOT NULL,
    train_loss REAL, test_loss REAL, test_acc REAL, diverged_epoch INTEGER,
    params INTEGER NOT NULL, params_graph INTEGER NOT NULL, seconds REAL NOT NULL, curves TEXT NOT NULL,
    error TEXT, weights BLOB, UNIQUE (run_id, topology_id, replicate));
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT NOT NULL, topology_id TEXT NOT NULL, replicate INTEGER NOT NULL,
    owner TEXT NOT NULL, heartbeat REAL NOT NULL, PRIMARY KEY (run_id, topology_id, replicate));
"""


def _initialise(conn: sqlite3.Connection) -> None:
    """Put the schema (and the migrations of earlier releases) into a store; idempotent."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    with _transaction(conn):
        for stmt in _SCHEMA.strip().split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        columns = {r[1] for r in conn.execute("PRAGMA table_info(results)")}
        if "error" not in columns:
            conn.execute("ALTER TABLE results ADD COLUMN error TEXT")  # stores before failed packs
        if "weights" not in columns:
            conn.execute("ALTER TABLE results ADD COLUMN weights BLOB")  # stores of release 0.1
        if "spec" not in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}:
            conn.execute("ALTER TABLE runs ADD COLUMN spec TEXT")  # stores of release 0.1


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection):
    """One immediate transaction: committed on success, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class StoreError(TopowireError):
    """The database cannot be opened, written, or is of another schema."""


def database_error(path: Path, exc: sqlite3.DatabaseError, verb: str = "read") -> StoreError:
    """One line on a SQLite error: a corrupt file named as corrupt (and left as it is),
    anything else as what could not be done."""
    if any(m in str(exc) for m in ("malformed", "not a database", "disk image")):
        return StoreError(f"database {str(path)!r} is corrupt ({exc}); it is left as it is: restore it from a "
                          "copy, or use another --db")
    return StoreError(f"cannot {verb} database {str(path)!r}: {exc}")


def _reads(method):
    """A reading method whose SQLite errors (a corrupt page met mid-query) are one StoreError."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, exc) from None
        except (ValueError, TypeError) as exc:  # a JSON column or a type edited by hand
            if isinstance(exc, TopowireError):
                raise
            raise StoreError(f"database {str(self.path)!r} holds a record topowire cannot read: {exc}") from None
    return wrapper


class Store:
    """A results database.

    Parameters
    ----------
    path : path-like
        SQLite file; created if missing.

    Raises
    ------
    StoreError
        Not a SQLite database, a newer schema, or a path that cannot be written.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise StoreError(f"database path {str(self.path)!r} is a directory")
        if readonly:
            self._open_readonly()
        else:
            self._open_writable()

    def _open_readonly(self) -> None:
        """Open an existing store for reading only: its bytes and its folder stay as they are.

        SQLite opens a WAL database read-only by creating its ``-wal`` and ``-shm`` files when
        they are absent, and leaves them behind. When they are absent no writer has the store
        open, so it is opened ``immutable``; a store being written (its ``-wal`` present) is
        read through the writer's files.
        """
        if not self.path.is_file():
            raise FileFormatError(f"database {str(self.path)!r} does not exist")
        live = Path(f"{self.path}-wal").exists()
        uri = self.path.resolve().as_uri() + ("?mode=ro" if live else "?mode=ro&immutable=1")
        try:
            self.conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            version = self._version()
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, exc) from None
        if version is None:
            raise StoreError(f"{str(self.path)!r} is not a topowire store (an empty file or database)")
        if version > SCHEMA_VERSION:
            raise StoreError(f"database {str(self.path)!r} has schema version {version}, newer than this "
                             f"topowire's {SCHEMA_VERSION}; upgrade topowire to read it")

    def _open_writable(self) -> None:
        try:
            if not self.path.exists():
                self._create()
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            version = self._version()
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"database {str(self.path)!r} has schema version {version}, newer than this "
                                 f"topowire's {SCHEMA_VERSION}; upgrade topowire to read it")
            _initialise(self.conn)  # idempotent: an empty file, or a store of an earlier release
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "conn"):
                self.conn.close()
            raise database_error(self.path, exc, "use") from None

    def _create(self) -> None:
        """Make a new store whole beside its path, then link it in: never replacing a file.

        Processes that create one store at once each build their own copy; the first link
        wins and the others open the winner's, so no process ever sees a half-made store
        (nor deletes one another is using).
        """
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            conn = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                _initialise(conn)
            finally:
                conn.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)

    def _version(self) -> int | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise StoreError(f"{str(self.path)!r} is a SQLite database but not a topowire store") from None
                return None
            raise
        return int(row[0]) if row else None

    def _tx(self):
        """One immediate transaction on this store's connection (:func:`_transaction`)."""
        return _transaction(self.conn)

    @contextlib.contextmanager
    def writing(self):
        """One immediate transaction on the store's connection (the store's writes, and
        :mod:`topowire.claims`); StoreError if the database cannot be written."""
        try:
            with self._tx():
                yield self.conn
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write database {str(self.path)!r}: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------
    def ensure_run(self, run_id: str, spec, topologies: Iterable) -> None:
        """Record a run (its :class:`~topowire.train.spec.RunSpec`) and its topologies
        (idempotent; a run of release 0.1 gains its record)."""
        record = spec.to_dict()
        with self.writing() as conn:
            conn.execute("INSERT OR IGNORE INTO runs (run_id, arch, task, config, spec) VALUES (?, ?, ?, ?, ?)",
                         (run_id, json.dumps(record["arch"]), spec.task.name, json.dumps(record["train"]),
                          json.dumps(record)))
            conn.execute("UPDATE runs SET spec = ? WHERE run_id = ? AND spec IS NULL", (json.dumps(record), run_id))
            conn.executemany(
                "INSERT OR IGNORE INTO topologies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(t.id, t.family, json.dumps(dict(t.params)), t.seed, t.n, t.n_edges, int(t.directed),
                  json.dumps(t.edges.tolist())) for t in topologies])

    def write_results(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Insert one pack's results, ending their claims (:mod:`topowire.claims`), in one transaction."""
        with self.writing() as conn:
            conn.executemany("DELETE FROM claims WHERE run_id = ? AND topology_id = ? AND replicate = ?",
                             [(run_id, r["topology_id"], r["replicate"]) for r in rows])
            conn.executemany(  # a model that failed before gives way to its new result
                "DELETE FROM results WHERE run_id = ? AND topology_id = ? AND replicate = ? AND status = 'failed'",
                [(run_id, r["topology_id"], r["replicate"]) for r in rows])
            conn.executemany(
                "INSERT INTO results (run_id, topology_id, replicate, init_seed, status, train_loss,"
                " test_loss, test_acc, diverged_epoch, params, params_graph, seconds, curves, error, weights)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, r["topology_id"], r["replicate"], r["init_seed"], r["status"], _real(r["train_loss"]),
                  _real(r["test_loss"]), _real(r["test_acc"]), r["diverged_epoch"], r["params"],
                  r["params_graph"], r["seconds"], json.dumps(r["curves"]), r.get("error"), r.get("weights"))
                 for r in rows])

    # -- reading ------------------------------------------------------------------------
    @_reads
    def done(self, run_id: str) -> set[tuple[str, int]]:
        """(topology id, replicate) pairs with a result in this run (a ``failed`` one is not
        done: the next run of the same command tries it again)."""
        return set(self.conn.execute("SELECT topology_id, replicate FROM results WHERE run_id = ? "
                                     "AND status != 'failed'", (run_id,)))

    @_reads
    def runs(self):
        import pandas as pd

        return pd.read_sql_query("SELECT run_id, task, arch, config, created FROM runs ORDER BY created", self.conn)

    @_reads
    def results(self, run_id: str | None = None):
        """One row per trained model, joined with its topology's family, parameters and size."""
        import pandas as pd

        query = ("SELECT r.run_id, r.topology_id, t.family, t.params AS topology_params, t.n, t.n_edges, "
                 "r.replicate, r.init_seed, r.status, r.train_loss, r.test_loss, r.test_acc, r.diverged_epoch, "
                 "r.params, r.params_graph, r.seconds, r.curves, r.error, u.task, u.arch "
                 "FROM results r JOIN topologies t ON t.id = r.topology_id JOIN runs u ON u.run_id = r.run_id")
        args: tuple = ()
        if run_id is not None:
            query += " WHERE r.run_id = ?"
            args = (run_id,)
        frame = pd.read_sql_query(query + " ORDER BY r.rowid", self.conn, params=args)
        frame["curves"] = frame["curves"].map(json.loads)
        return frame

    @_reads
    def topologies(self, ids=None) -> dict:
        """Stored topologies by id (all, or those of ``ids``)."""
        from topowire.topology import Topology

        rows = self.conn.execute("SELECT id, family, params, seed, n, directed, edges FROM topologies").fetchall()
        wanted = None if ids is None else set(ids)
        return {r[0]: Topology(r[4], json.loads(r[6]), bool(r[5]), family=r[1], params=json.loads(r[2]), seed=r[3])
                for r in rows if wanted is None or r[0] in wanted}

    @_reads
    def weights(self, run_id: str, topology_id: str, replicate: int) -> bytes | None:
        """A model's final weights (safetensors bytes), when its run kept them."""
        row = self.conn.execute("SELECT weights FROM results WHERE run_id = ? AND topology_id = ? AND replicate = ?",
                                (run_id, topology_id, replicate)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    @_reads
    def _run_list(self) -> str:
        """Each run with results: its id, arch, task, epochs, models and date."""
        rows = self.conn.execute("SELECT r.run_id, r.arch, r.task, r.config, r.created, count(*) FROM runs r "
                                 "JOIN results s ON s.run_id = r.run_id GROUP BY r.run_id ORDER BY r.created, r.rowid")
        described = []
        for run_id, arch, task, config, created, models in rows:
            kind, epochs = json.loads(arch).get("kind", "?"), json.loads(config).get("epochs", "?")
            described.append(f"{run_id} ({kind} on {task}, {epochs} epochs, {models} models, {created[:16]})")
        return ", ".join(described)

    def run(self, run_id: str | None = None) -> dict[str, Any]:
        """One run's record: ``run_id``, ``spec`` (its RunSpec as a dict), ``arch`` and
        ``config`` (dicts), ``task`` (the name).

        Without ``run_id`` the store must hold exactly one run with results.

        Raises
        ------
        StoreError
            No such run, no results, or several runs and none chosen.
        """
        ids = [r[0] for r in self.conn.execute("SELECT DISTINCT run_id FROM results ORDER BY rowid")]
        if run_id is None:
            if not ids:
                raise StoreError(f"no results in {self.path}")
            if len(set(ids)) > 1:
                raise StoreError(f"{self.path} holds {len(set(ids))} runs: {self._run_list()}; choose one with --run")
            run_id = ids[0]
        has_spec = "spec" in {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        row = self.conn.execute(f"SELECT arch, task, config, {'spec' if has_spec else 'NULL'} FROM runs "
                                "WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or run_id not in ids:
            raise StoreError(f"no results in {self.path} for run {run_id!r}")
        return {"run_id": run_id, "arch": json.loads(row[0]), "task": row[1], "config": json.loads(row[2]),
                "spec": None if row[3] is None else json.loads(row[3])}

    @_reads
    def export_results(self, path: str | Path, run_id: str | None = None) -> int:
        """Write the results (one row per model, curves as JSON) to a CSV or Parquet table."""
        from topowire._io import write_table

        frame = self.results(run_id)
        if frame.empty:
            raise StoreError(f"no results in {self.path}" + (f" for run {run_id!r}" if run_id else ""))
        frame["curves"] = frame["curves"].map(json.dumps)
        write_table(frame, path, index=False)
        return len(frame)

    def integrity(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]


def _real(x: Any) -> float | None:
    x = None if x is None else float(x)
    return None if x is None or x != x else x


def open_existing(path: str | Path) -> Store:
    """A store that must already exist, opened for reading only (see :class:`Store`)."""
    return Store(path, readonly=True)
