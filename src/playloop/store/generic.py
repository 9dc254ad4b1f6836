"""Run one named query on any store: ``execute`` (rowcount) and ``fetch`` (rows).

Code outside the store (API tokens, for one) keeps its SQL as named queries in
``store/sql/<dialect>/queries_<area>.sql`` (loaded with the store's own queries) and runs it
through these two primitives, so it adds no method to the store classes. A store with public
``execute``/``fetch`` methods of these signatures is used through them; otherwise through
the dialect primitives every ``SqlStore`` has (``_execute``, ``_fetch``).

Parameters are a sequence for positional queries or a mapping for named ones
(``:name`` in SQLite, ``%(name)s`` in PostgreSQL); keys a query does not use are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Params = Sequence[Any] | Mapping[str, Any]


def dialect(store: object) -> str:
    """``"sqlite"`` or ``"postgres"``."""
    name = getattr(store, "dialect", None)
    if name not in ("sqlite", "postgres"):
        raise TypeError(f"{type(store).__name__} names no known SQL dialect ({name!r})")
    return str(name)


def execute(store: Any, query_name: str, params: Params = ()) -> int:
    """Run one writing statement (atomic on its own); return the number of rows it touched.

    Not inside ``store.transaction()``: PostgreSQL's runs in pipeline mode, where a
    statement's row count is not known until the pipeline syncs."""
    dialect(store)
    if callable(getattr(store, "execute", None)):
        return int(store.execute(query_name, params))
    return int(store._execute(query_name, params))


def fetch(store: Any, query_name: str, params: Params = ()) -> list[tuple[Any, ...]]:
    """Run a reading query; return its rows as tuples."""
    dialect(store)
    if callable(getattr(store, "fetch", None)):
        return list(store.fetch(query_name, params))
    return list(store._fetch(query_name, params))
