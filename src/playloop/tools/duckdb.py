"""``duckdb``: a statement against DuckDB (in memory or a file), rows as dicts."""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any

import duckdb

from playloop.tools._util import json_safe, resolve_path
from playloop.tools.base import Tool, ToolConfig, ToolContext, ToolError, ToolTimeout

_NAMED_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
#: statement types that answer with rows (the others answer with a "Count" of rows changed)
_QUERY_TYPES = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "RELATION", "LOGICAL_PLAN"})


class DuckdbConfig(ToolConfig):
    database: str = ":memory:"
    command: str | None = None
    query: str | None = None
    params: list[Any] | dict[str, Any] | None = None


class DuckdbTool(Tool):
    """Runs ``command`` and/or ``query`` (``command`` first) on one connection.

    ``database`` is ``:memory:`` (the default: a fresh database for this step only) or a file
    path relative to the playbook's directory. Parameters bind from ``params`` (a list for
    ``?``/``$1``, a dict for ``$name``), else from the ``input`` bindings that the SQL names
    as ``$name``; ``params`` bind to ``query`` when there is one, and to the last statement of
    a multi-statement SQL. Result: ``{rows: [{column:
    value}], columns, rowcount}`` with JSON-safe values (dates as ISO strings, decimals as
    numbers); for writes ``rows`` is empty and ``rowcount`` the number of rows changed.
    """

    kind = "duckdb"
    Config = DuckdbConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        statements = [sql for sql in (config.command, config.query) if sql and sql.strip()]
        if not statements:
            raise ToolError("the duckdb tool needs a 'command' or a 'query'", "ConfigError")
        path = config.database
        if path != ":memory:" and not path.startswith(("md:", "motherduck:")):
            target = resolve_path(path, ctx)
            target.parent.mkdir(parents=True, exist_ok=True)
            path = str(target)
        timer: threading.Timer | None = None
        timed_out = threading.Event()
        try:
            con = duckdb.connect(path)
        except duckdb.Error as e:
            raise _error(e) from None
        try:
            if ctx.timeout is not None:

                def interrupt() -> None:
                    timed_out.set()
                    # it may have finished (and been closed) in the meantime
                    with contextlib.suppress(duckdb.Error):
                        con.interrupt()

                timer = threading.Timer(ctx.timeout, interrupt)
                timer.daemon = True
                timer.start()
            result: dict[str, Any] = {}
            for i, sql in enumerate(statements):
                last = i == len(statements) - 1
                if config.params is not None:  # they belong to the query when both are given
                    params = config.params if last else None
                else:
                    params = _named(sql, input)
                result = _execute(con, sql, params)
            return result
        except duckdb.Error as e:
            if timed_out.is_set() and isinstance(e, duckdb.InterruptException):
                raise ToolTimeout(ctx.timeout or 0.0) from None
            raise _error(e) from None
        finally:
            if timer is not None:
                timer.cancel()
            con.close()


def _named(sql: str, input: dict[str, Any]) -> dict[str, Any] | None:
    """The ``input`` bindings the SQL refers to as ``$name`` (DuckDB rejects extra ones)."""
    if not input:
        return None
    wanted = {name: input[name] for name in _NAMED_PARAM.findall(sql) if name in input}
    return wanted or None


def _execute(con: Any, sql: str, params: list[Any] | dict[str, Any] | None) -> dict[str, Any]:
    parsed = duckdb.extract_statements(sql)
    last_type = parsed[-1].type.name if parsed else "SELECT"
    cursor = con.execute(sql) if params is None else con.execute(sql, params)
    description = cursor.description
    if description is None:
        return {"rows": [], "columns": [], "rowcount": -1}
    columns = [str(d[0]) for d in description]
    fetched = cursor.fetchall()
    if last_type not in _QUERY_TYPES and columns == ["Count"]:
        # a write (without RETURNING) or DDL: DuckDB answers with the number of rows changed
        count = int(fetched[0][0]) if fetched else -1
        return {"rows": [], "columns": [], "rowcount": count}
    rows = [
        {col: json_safe(value) for col, value in zip(columns, row, strict=True)} for row in fetched
    ]
    return {"rows": rows, "columns": columns, "rowcount": len(rows)}


def _error(e: Exception) -> ToolError:
    name = type(e).__name__
    return ToolError(f"duckdb.{name}: {e}", f"duckdb.{name}")
