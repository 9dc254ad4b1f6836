"""Claims: one holder per database for a background job (the NATS publisher, the indexer).

A claim is held for as long as its holder runs and is freed by the operating system or the
database when the holder dies, so a crashed process never leaves a stale claim behind:

- SQLite: an exclusive, non-blocking ``flock`` on a file beside the database. A lock row
  would need a lease and an expiry; SQLite is one machine, so a file lock reaches every
  process that can open the database.
- PostgreSQL: ``pg_try_advisory_lock`` on one connection taken out of the store's pool
  and kept for the claim's lifetime. Two-int keys sit a key space apart from the bigint
  execution locks. ``acquire`` checks that the session still holds it, so a holder whose
  session died (and lost the lock with it) stops until it claims again.

Both are thread-safe: two threads of one process claiming at once would otherwise open two
descriptors, and ``flock`` refuses the second even in the same process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Any, Protocol

from playloop.store.queries import queries


class Claim(Protocol):
    def acquire(self) -> bool:
        """Hold the claim (again); False when another process holds it."""
        ...

    def release(self) -> None: ...


class FileClaim:
    """An exclusive, non-blocking ``flock`` on ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._fd is not None:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True

    def release(self) -> None:
        with self._lock:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None


class AdvisoryClaim:
    """A PostgreSQL session advisory lock on ``key`` (two int4), on a connection kept out of
    ``pool`` while held."""

    def __init__(self, pool: Any, key: tuple[int, int]) -> None:
        self.pool = pool
        self.key = key
        self._conn: Any = None
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._conn is not None:
                try:
                    if self._run("claim_held"):
                        return True
                except Exception:  # the session is gone, and the lock with it
                    pass
                self._drop()
            conn = self.pool.getconn()
            try:
                held = bool(conn.execute(_sql("claim_try"), self.key).fetchone()[0])
            except Exception:
                self.pool.putconn(conn)
                raise
            if not held:
                self.pool.putconn(conn)
                return False
            self._conn = conn
            return True

    def release(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            with contextlib.suppress(Exception):  # a broken session has released it already
                self._run("claim_release")
            self._drop()

    def _run(self, name: str) -> bool:
        return bool(self._conn.execute(_sql(name), self.key).fetchone()[0])

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            self.pool.putconn(conn)


def claim_for(store: Any, name: str, key: tuple[int, int]) -> Claim:
    """The claim called ``name`` on ``store``'s database: an advisory lock on ``key`` for
    PostgreSQL, a file ``<database>.<name>.lock`` for SQLite."""
    if store.dialect == "postgres":
        return AdvisoryClaim(store.pool, key)
    return FileClaim(Path(f"{store.path}.{name}.lock"))


def _sql(name: str) -> str:
    return queries("postgres")[name]
