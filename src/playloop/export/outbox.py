"""The outbox side of NATS publishing: read a batch, delete what was acknowledged, and claim.

Every committed event has a row in ``noetl.outbox`` (written in the append's transaction).
The publisher reads rows through named queries (``store/sql/<dialect>/queries_outbox.sql``)
run by the store's own primitives (``_fetch``/``_execute`` of ``SqlStore``: its connection,
its lock, its pool), so the store classes need no outbox method.

Only one publisher per database may publish at a time, or two processes could interleave
one execution's events out of order: the publisher holds a claim (``store/claims.py``: a
file lock beside a SQLite database, a session advisory lock on PostgreSQL) for as long as
it runs, checked before every batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

from playloop.store.claims import Claim, claim_for

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


class Outbox:
    """The waiting rows of one store, and this process's claim to publish them."""

    def __init__(self, store: object) -> None:
        self.store = cast(NamedQueries, store)
        self.dialect = self.store.dialect
        if self.dialect not in ("sqlite", "postgres"):
            raise TypeError(f"no outbox for a {type(store).__name__} store")
        self.claim: Claim = claim_for(store, "publisher", CLAIM_KEY)

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
