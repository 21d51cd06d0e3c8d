"""Claims: many processes training one run on one store (:class:`Claims`).

Each process claims a pack's models in an IMMEDIATE transaction before training them
(:meth:`Claims.claim`), keeps its claims alive with a heartbeat (:meth:`Claims.heartbeat`),
and the store releases them in the transaction that writes their results
(:meth:`topowire.store.Store.write_results`). A claim whose heartbeat is older than its
time-to-live (or whose owner process is gone, on this host) is free again. The claims live
in the store's ``claims`` table.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["Claims", "CLAIM_TTL", "claim_ttl"]

#: Seconds after its last heartbeat that a claim expires (``TOPOWIRE_CLAIM_TTL``).
CLAIM_TTL = 120.0

Model = tuple[str, int]  # (topology id, replicate)


def claim_ttl() -> float:
    """The claim time-to-live in seconds: ``TOPOWIRE_CLAIM_TTL`` or :data:`CLAIM_TTL`."""
    from topowire import checks

    raw = os.environ.get("TOPOWIRE_CLAIM_TTL")
    if raw is None:
        return CLAIM_TTL
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    return checks.number("TOPOWIRE_CLAIM_TTL", value, 0, lo_open=True)


def _owner_alive(owner: str) -> bool:
    """False only when the owner ran on this host and its process is gone."""
    from topowire._io import process_alive

    host, _, rest = owner.partition("/")
    pid = rest.split("/")[0]
    return host != socket.gethostname() or not pid.isdigit() or process_alive(int(pid))


class Claims:
    """This process's claims on the models of a store (its owner: host, pid and a nonce).

    Parameters
    ----------
    store : topowire.store.Store
        A store opened for writing.
    """

    def __init__(self, store) -> None:
        self.store = store
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    def claim(self, run_id: str, pick: Callable[[set[Model]], tuple[Any, list[Model]]]) -> Any:
        """Claim models of a run for this owner, in one IMMEDIATE transaction.

        ``pick(taken)`` receives the models that are done or held by a live claim (this
        owner's included: its packs in flight) and returns ``(what, models)``: anything, and
        the models it stands for, which are claimed (an empty list claims nothing). Expired
        claims (heartbeat older than :func:`claim_ttl`, or a dead owner on this host) are
        dropped first. Returns ``what``.
        """
        conn, now, ttl = self.store.conn, time.time(), claim_ttl()
        with self.store.writing():
            claims = conn.execute("SELECT topology_id, replicate, owner, heartbeat FROM claims WHERE run_id = ?",
                                  (run_id,)).fetchall()
            stale = [(t, r) for t, r, o, h in claims if o != self.owner and (now - h > ttl or not _owner_alive(o))]
            conn.executemany("DELETE FROM claims WHERE run_id = ? AND topology_id = ? AND replicate = ?",
                             [(run_id, t, r) for t, r in stale])
            taken = self.store.done(run_id) | ({(t, r) for t, r, _, _ in claims} - set(stale))
            what, chosen = pick(taken)
            conn.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                             [(run_id, t, r, self.owner, now) for t, r in chosen])
        return what

    def held(self, run_id: str) -> set[Model]:
        """The models this owner holds claims on (its packs in flight)."""
        return set(self.store.conn.execute("SELECT topology_id, replicate FROM claims WHERE run_id = ? AND owner = ?",
                                           (run_id, self.owner)))

    @contextlib.contextmanager
    def heartbeat(self):
        """Keep this owner's claims alive (a thread with its own connection) while inside;
        on leaving, drop what it still holds."""
        stop = threading.Event()

        def beat() -> None:
            conn = sqlite3.connect(str(self.store.path), timeout=30, isolation_level=None)
            try:
                while not stop.wait(claim_ttl() / 4):
                    conn.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), self.owner))
            finally:
                conn.close()

        thread = threading.Thread(target=beat, name="topowire-heartbeat", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            with contextlib.suppress(sqlite3.Error):
                self.store.conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))

