"""The outbox side of NATS publishing: read a batch, delete what was acknowledged, and claim.

Every committed event has a row in ``noetl.outbox`` (written in the append's transaction).
The publisher reads rows through named queries (``store/sql/<dialect>/queries_outbox.sql``)
run by the store's own primitives (``_fetch``/``_execute`` of ``SqlStore``: its connection,
its lock, its pool), so the store classes need no outbox method.

Only one publisher per database may publish at a time, or two processes could interleave
one execution's events out of order. The claim is held for as long as the publisher runs
and is freed by the operating system or the database when its holder dies:

- SQLite: an exclusive ``flock`` on ``<database>.publisher.lock``. A lock row would need a
  lease and an expiry; ``BEGIN IMMEDIATE`` around a publish would stall every append while
  NATS is slow. (SQLite is one machine, so a file lock reaches every process that can open
  the database.)
- PostgreSQL: ``pg_try_advisory_lock`` on one connection taken from the store's pool and
  kept for the publisher's lifetime; it is checked before every batch, so a publisher whose
  session died (and so lost the lock) stops publishing until it claims again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import orjson

from playloop.store.queries import queries

#: the advisory lock key of the publisher claim (two int4 keys: "play", "outb")
CLAIM_KEY = (0x706C6179, 0x6F757462)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    event_id: int
    execution_id: int
    seq: int
    subject: str
    payload: bytes


class NamedQueries(Protocol):
    """The store primitives the outbox uses (``playloop.store.sqlstore.SqlStore``)."""

    dialect: str

    def _fetch(self, name: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def _execute(self, name: str, params: Sequence[Any] = ()) -> int: ...


class Claim(Protocol):
    def acquire(self) -> bool:
        """Hold the claim (again); False when another publisher holds it."""
        ...

    def release(self) -> None: ...


class FileClaim:
    """An exclusive, non-blocking ``flock`` on a file beside the SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AdvisoryClaim:
    """A PostgreSQL session advisory lock on a connection kept out of the pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._conn: Any = None

    def acquire(self) -> bool:
        if self._conn is not None:
            try:
                if self._run("outbox_claim_held"):
                    return True
            except Exception:  # the session is gone, and the lock with it
                pass
            self._drop()
        conn = self.pool.getconn()
        try:
            held = bool(conn.execute(_sql("outbox_try_claim"), CLAIM_KEY).fetchone()[0])
        except Exception:
            self.pool.putconn(conn)
            raise
        if not held:
            self.pool.putconn(conn)
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):  # a broken session has released it already
            self._run("outbox_release_claim")
        self._drop()

    def _run(self, name: str) -> bool:
        return bool(self._conn.execute(_sql(name), CLAIM_KEY).fetchone()[0])

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.pool.putconn(conn)


def _sql(name: str) -> str:
    return queries("postgres")[name]


class Outbox:
    """The waiting rows of one store, and this process's claim to publish them."""

    def __init__(self, store: object) -> None:
        self.store = cast(NamedQueries, store)
        self.dialect = self.store.dialect
        self.claim: Claim
        if self.dialect == "sqlite":
            self.claim = FileClaim(Path(f"{store.path}.publisher.lock"))  # type: ignore[attr-defined]
        elif self.dialect == "postgres":
            self.claim = AdvisoryClaim(store.pool)  # type: ignore[attr-defined]
        else:
            raise TypeError(f"no outbox for a {type(store).__name__} store")

    def batch(self, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows: oldest first, each execution's from its lowest seq, no gap."""
        rows = self.store._fetch("outbox_batch", (limit,))
        if not rows:  # empty, or (rarely) every candidate cut: see the query
            rows = self.store._fetch("outbox_batch_by_execution", (limit,))
        return [OutboxRow(int(r[0]), int(r[1]), int(r[2]), str(r[3]), _bytes(r[4])) for r in rows]

    def delete(self, event_ids: Sequence[int]) -> int:
        if not event_ids:
            return 0
        return self.store._execute("outbox_delete", (orjson.dumps(list(event_ids)).decode(),))

    def count(self) -> int:
        return int(self.store._fetch("outbox_count")[0][0])

    def close(self) -> None:
        self.claim.release()


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return orjson.dumps(payload)  # a JSON column a driver already decoded
