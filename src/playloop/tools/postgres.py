"""``postgres``: SQL against a PostgreSQL database, parameters bound by the server, rows as dicts.

The connection comes from a named credential (``auth: NAME``, resolved through
``ToolContext.credentials``) or, discouraged since the playbook then holds a password, a
``dsn``. Either way the password is registered with the ``Redactor`` before connecting, so
neither an error message nor a result carries it. SQL text is never built from values:
``params`` travel separately to the server, and the identifiers of ``table`` + ``data``
are checked against a strict pattern and quoted with ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from playloop.secrets.redact import REDACTOR
from playloop.tools._util import json_safe
from playloop.tools.base import (
    Tool,
    ToolConfig,
    ToolContext,
    ToolError,
    ToolTimeout,
    error_facts,
)

#: seconds to wait for a connection when the step has no timeout
DEFAULT_CONNECT_TIMEOUT = 10
#: the credential values passed to libpq besides ``dsn`` (which may hold them all)
CONNECTION_FIELDS = ("host", "hostaddr", "port", "user", "password", "dbname", "sslmode")
#: a plain SQL identifier: what ``table``, ``data`` keys and ``returning`` may name
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
QUERY_CANCELED = "57014"

Params = list[Any] | dict[str, Any] | None
Statement = tuple[str | sql.Composed, Params]


class PostgresConfig(ToolConfig):
    auth: str | None = None
    dsn: SecretStr | None = None
    command: str | None = None
    query: str | None = None
    params: list[Any] | dict[str, Any] | None = None
    table: str | None = None
    data: dict[str, Any] | None = None
    returning: list[str] | str | None = None


class PostgresTool(Tool):
    """Runs ``command`` and/or ``query`` (``command`` first), or inserts ``data`` into ``table``.

    ``params`` bind server-side (a list for ``%s``, a mapping for ``%(name)s``; to ``query``
    when both are given), else the ``input`` bindings bind as named parameters. ``command``
    may hold several statements when nothing binds to it. ``table`` (``name`` or
    ``schema.name``) + ``data`` inserts one row, its columns the mapping's keys (used
    exactly as written, quoted), ``returning`` a column list or ``"*"``. All of it runs in
    one transaction, committed at the end. Result: ``{rows: [{column: value}], columns,
    rowcount}`` of the last statement (``rowcount``: rows changed by a write, rows returned
    by a query). A server error is a ``ToolError`` of type ``postgres.<SQLSTATE>``.
    """

    kind = "postgres"
    Config = PostgresConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        plan = _plan(config, input)  # every check before connecting: a bad config runs nothing
        conninfo = _conninfo(config, ctx)
        started = time.monotonic()
        connect_timeout = (
            DEFAULT_CONNECT_TIMEOUT if ctx.timeout is None else max(1, math.ceil(ctx.timeout))
        )
        try:
            with (
                psycopg.connect(conninfo, connect_timeout=connect_timeout) as conn,
                conn.cursor() as cur,
            ):
                if ctx.timeout is not None:
                    ms = max(1, int(ctx.timeout * 1000))
                    cur.execute("SELECT set_config('statement_timeout', %s, true)", [str(ms)])
                result: dict[str, Any] = {}
                for statement, params in plan:
                    cur.execute(statement, params)
                    result = _result(cur)
        except psycopg.Error as exc:
            if ctx.timeout is not None and (
                exc.sqlstate == QUERY_CANCELED or time.monotonic() - started >= ctx.timeout
            ):
                raise ToolTimeout(ctx.timeout) from None
            raise _tool_error(exc) from None
        return REDACTOR.redact(result)


def _plan(config: PostgresConfig, input: Mapping[str, Any]) -> list[Statement]:
    """The statements to run with their parameters; raises ``ConfigError`` for a bad config."""
    statements = [s for s in (config.command, config.query) if s and s.strip()]
    if config.table is not None or config.data is not None:
        if statements or config.params is not None:
            raise _config_error(
                "'table' + 'data' inserts a row; it does not combine with "
                "'command', 'query' or 'params'"
            )
        return [_insert(config)]
    if config.returning is not None:
        raise _config_error("'returning' goes with 'table' + 'data'")
    if not statements:
        raise _config_error("needs a 'command', a 'query', or 'table' + 'data'")
    explicit = config.params is not None
    params: Params = config.params if explicit else (dict(input) if input else None)
    params = _adapt(params)
    plan: list[Statement] = []
    for i, statement in enumerate(statements):
        last = i == len(statements) - 1
        plan.append((statement, params if last or not explicit else None))
    return plan


def _insert(config: PostgresConfig) -> Statement:
    if not config.table or not config.data:
        raise _config_error("'table' and 'data' (a non-empty mapping) go together")
    table = sql.Identifier(*(_identifier(part, "table") for part in config.table.split(".", 1)))
    columns = [_identifier(str(key), "column") for key in config.data]
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table,
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(sql.Placeholder() for _ in columns),
    )
    returning = [config.returning] if isinstance(config.returning, str) else config.returning
    if returning:
        targets = (
            sql.SQL("*")
            if returning == ["*"]
            else sql.SQL(", ").join(
                sql.Identifier(_identifier(c, "returning column")) for c in returning
            )
        )
        statement = sql.Composed([statement, sql.SQL(" RETURNING "), targets])
    return statement, [_adapt_value(config.data[key]) for key in config.data]


def _identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise _config_error(
            f"{what} name {name!r} is not a valid identifier (letters, digits and '_', "
            "not starting with a digit, at most 63 characters); nothing was run"
        )
    return name


def _adapt(params: Params) -> Params:
    if isinstance(params, dict):
        return {k: _adapt_value(v) for k, v in params.items()}
    if isinstance(params, list):
        return [_adapt_value(v) for v in params]
    return params


def _adapt_value(value: Any) -> Any:
    """A mapping binds as ``jsonb`` (psycopg adapts lists to arrays and scalars as is)."""
    return Jsonb(value) if isinstance(value, Mapping) else value


def _conninfo(config: PostgresConfig, ctx: ToolContext) -> str:
    if config.auth and config.dsn is not None:
        raise _config_error("give 'auth' (a credential name) or 'dsn', not both")
    if config.dsn is not None:
        conninfo = config.dsn.get_secret_value()
    elif config.auth:
        conninfo = _from_credential(config.auth, ctx)
    else:
        raise _config_error("needs 'auth' (a credential name: `playloop credentials set`)")
    REDACTOR.add_dsn(conninfo)
    return conninfo


def _from_credential(name: str, ctx: ToolContext) -> str:
    if ctx.credentials is None:
        raise ToolError(
            f"postgres: credential '{name}' cannot be resolved: this run has no credential store",
            "CredentialError",
        )
    try:
        values = ctx.credentials(name)
    except Exception as exc:
        raise ToolError(f"postgres: {REDACTOR.redact_text(str(exc))}", "CredentialError") from None
    fields = {k: str(values[k]) for k in CONNECTION_FIELDS if values.get(k) is not None}
    dsn = values.get("dsn")
    if not dsn and not fields:
        raise ToolError(
            f"postgres: credential '{name}' holds neither 'dsn' nor connection fields",
            "CredentialError",
        )
    try:
        return make_conninfo(str(dsn or ""), **fields)
    except psycopg.ProgrammingError:
        raise ToolError(
            f"postgres: credential '{name}' holds a malformed dsn", "CredentialError"
        ) from None


def _result(cur: psycopg.Cursor[Any]) -> dict[str, Any]:
    while cur.nextset():  # several statements: the last one's result is the step's
        pass
    if cur.description is None:
        return {"rows": [], "columns": [], "rowcount": cur.rowcount}
    columns = [c.name for c in cur.description]
    rows = [
        {col: json_safe(value) for col, value in zip(columns, row, strict=True)}
        for row in cur.fetchall()
    ]
    return {"rows": rows, "columns": columns, "rowcount": len(rows)}


def _tool_error(exc: psycopg.Error) -> ToolError:
    """The server's message and SQLSTATE; libpq's connection text has no password, and the
    redactor masks it anyway should a server echo one."""
    sqlstate = exc.sqlstate
    diag = exc.diag
    text = str(exc).strip()
    parts = [diag.message_primary or (text.splitlines()[0] if text else type(exc).__name__)]
    if diag.message_detail:
        parts.append(f"DETAIL: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"HINT: {diag.message_hint}")
    label = sqlstate or type(exc).__name__
    details = {
        **error_facts(exc),
        "sqlstate": sqlstate,
        "constraint": diag.constraint_name,
        "table": diag.table_name,
        "column": diag.column_name,
    }
    return ToolError(
        REDACTOR.redact_text(f"postgres {label}: {'; '.join(parts)}"),
        f"postgres.{label}",
        details=REDACTOR.redact({k: v for k, v in details.items() if v is not None}),
    )


def _config_error(message: str) -> ToolError:
    return ToolError(f"postgres: {message}", "ConfigError")
