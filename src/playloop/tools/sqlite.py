"""``sqlite``: a statement against a SQLite file, parameters bound, rows as dicts."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from typing import Any

from playloop.tools._util import json_safe, resolve_path
from playloop.tools.base import Tool, ToolConfig, ToolContext, ToolError, ToolTimeout

#: how long to wait for another writer's lock when the step has no timeout (seconds)
_BUSY_TIMEOUT = 30.0
#: SQLite VM instructions between two checks of the step's deadline
_PROGRESS_EVERY = 10_000


class SqliteConfig(ToolConfig):
    database: str
    command: str | None = None
    query: str | None = None
    params: list[Any] | dict[str, Any] | None = None


Params = list[Any] | dict[str, Any] | None


def _is_multi_statement(e: sqlite3.ProgrammingError) -> bool:
    return "one statement at a time" in str(e)


class SqliteTool(Tool):
    """Runs ``command`` and/or ``query`` (``command`` first when both are given).

    ``database`` is a file path (relative to the playbook's directory) or ``:memory:``.
    Parameters bind from ``params`` (a list for ``?``, a dict for ``:name``; to ``query`` when
    both are given), else from the ``input`` bindings as named parameters. SQL with several statements and no parameters
    runs as a script. Writes are committed. Result: ``{rows: [{column: value}], columns,
    rowcount}`` for the last statement (``rowcount`` is the number of rows changed for
    writes, of rows returned for queries).
    """

    kind = "sqlite"
    Config = SqliteConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        statements = [sql for sql in (config.command, config.query) if sql and sql.strip()]
        if not statements:
            raise ToolError("the sqlite tool needs a 'command' or a 'query'", "ConfigError")
        explicit = config.params is not None
        params: Params = config.params if explicit else (dict(input) if input else None)
        path = config.database
        if path != ":memory:" and not path.startswith("file:"):
            target = resolve_path(path, ctx)
            target.parent.mkdir(parents=True, exist_ok=True)
            path = str(target)
        deadline = None if ctx.timeout is None else time.monotonic() + ctx.timeout
        try:
            with closing(
                sqlite3.connect(
                    path,
                    timeout=ctx.timeout if ctx.timeout is not None else _BUSY_TIMEOUT,
                    uri=path.startswith("file:"),
                )
            ) as conn:
                if deadline is not None:
                    conn.set_progress_handler(
                        lambda: int(time.monotonic() > deadline), _PROGRESS_EVERY
                    )
                try:
                    result: dict[str, Any] = {}
                    for i, sql in enumerate(statements):
                        # explicit params belong to the query when both are given
                        last = i == len(statements) - 1
                        bound = params if last or not explicit else None
                        result = _execute(conn, sql, bound, explicit and last)
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
        except sqlite3.Error as e:
            if deadline is not None and time.monotonic() > deadline and "interrupted" in str(e):
                raise ToolTimeout(ctx.timeout or 0.0) from None
            raise ToolError(
                f"sqlite3.{type(e).__name__}: {e}", f"sqlite3.{type(e).__name__}"
            ) from None
        return result


def _execute(conn: sqlite3.Connection, sql: str, params: Params, explicit: bool) -> dict[str, Any]:
    changes_before = conn.total_changes
    try:
        cursor = conn.execute(sql) if params is None else conn.execute(sql, params)
    except sqlite3.ProgrammingError as e:
        if not _is_multi_statement(e):
            raise
        if explicit:
            raise ToolError(
                "sqlite: parameters bind to a single statement; this SQL has several",
                "sqlite3.ProgrammingError",
            ) from None
        conn.executescript(sql)
        return {"rows": [], "columns": [], "rowcount": conn.total_changes - changes_before}
    with closing(cursor):
        if cursor.description is None:
            return {"rows": [], "columns": [], "rowcount": cursor.rowcount}
        columns = [d[0] for d in cursor.description]
        rows = [
            {col: json_safe(value) for col, value in zip(columns, row, strict=True)}
            for row in cursor.fetchall()
        ]
        return {"rows": rows, "columns": columns, "rowcount": len(rows)}
