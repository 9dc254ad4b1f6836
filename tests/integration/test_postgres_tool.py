"""The ``postgres`` tool and named credentials, against the real PostgreSQL server.

Runs on both backends: the tool always talks to the server of ``$PLAYLOOP_TEST_PG_DSN``
(a missing variable fails these tests, never skips them), while the credentials live in the
backend's own database. Each test gets a fresh database owned by a fresh login role with a
random password, so "the password is nowhere" is a meaningful thing to grep for.
"""

from __future__ import annotations

import logging
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql
from tests.conftest import pg_dsn

from playloop.runtime import Engine
from playloop.secrets.credentials import CredentialStore, UnknownCredential
from playloop.secrets.crypto import ENV, DecryptError
from playloop.secrets.redact import REDACTOR
from playloop.store.open import open_store
from playloop.tools.base import ToolContext, ToolError, ToolTimeout
from playloop.tools.registry import tool


@dataclass(frozen=True)
class Target:
    """A database of its own, reachable only with its role's password."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True)


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def target() -> Iterator[Target]:
    suffix = uuid.uuid4().hex[:12]
    server = urlsplit(pg_dsn())
    t = Target(
        host=server.hostname or "127.0.0.1",
        port=server.port or 5432,
        user=f"pl_role_{suffix}",
        password=f"pw-{uuid.uuid4().hex}",
        dbname=f"pl_tool_{suffix}",
    )
    role, db = sql.Identifier(t.user), sql.Identifier(t.dbname)
    _admin(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(t.password)))
    _admin(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
    yield t
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
    _admin(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(ENV, raising=False)  # the key file, unless a test sets a key
    return tmp_path / "home"


@pytest.fixture
def credentials(db_url: str, home: Path, target: Target) -> Iterator[CredentialStore]:
    """``warehouse`` (connection fields) and ``warehouse_dsn`` in the backend's database."""
    store = open_store(db_url)
    creds = CredentialStore(store, home)
    creds.set(
        "warehouse",
        "postgres",
        {
            "host": target.host,
            "port": target.port,
            "user": target.user,
            "password": target.password,
            "dbname": target.dbname,
        },
    )
    creds.set("warehouse_dsn", "postgres", {"dsn": target.dsn})
    yield creds
    store.close()


@pytest.fixture
def redacting_logs() -> Iterator[None]:
    REDACTOR.install()
    yield
    REDACTOR.uninstall()


def context(creds: CredentialStore | None, timeout: float | None = None) -> ToolContext:
    return ToolContext(
        execution_id=1,
        step="record",
        iteration=None,
        attempt=1,
        timeout=timeout,
        credentials=creds.get if creds is not None else None,
    )


def run(config: dict[str, Any], ctx: ToolContext, input: dict[str, Any] | None = None) -> Any:
    postgres = tool("postgres")  # through the entry point, as the engine finds it
    return postgres.run(postgres.Config.model_validate(config), input or {}, ctx)


def fails(config: dict[str, Any], ctx: ToolContext) -> ToolError:
    with pytest.raises(ToolError) as caught:
        run(config, ctx)
    return caught.value


# --- statements ------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["warehouse", "warehouse_dsn"])
def test_query_binds_list_and_named_params(credentials: CredentialStore, auth: str) -> None:
    ctx = context(credentials)
    by_position = run(
        {"auth": auth, "query": "SELECT %s::int + 1 AS n, %s AS s", "params": [41, "it's"]}, ctx
    )
    assert by_position == {"rows": [{"n": 42, "s": "it's"}], "columns": ["n", "s"], "rowcount": 1}
    by_name = run(
        {"auth": auth, "query": "SELECT %(a)s::text AS a", "params": {"a": "'; DROP TABLE x; --"}},
        ctx,
    )
    assert by_name["rows"] == [{"a": "'; DROP TABLE x; --"}]


def test_input_bindings_are_named_params(credentials: CredentialStore) -> None:
    result = run(
        {"auth": "warehouse", "query": "SELECT %(score)s::float * 2 AS double"},
        context(credentials),
        {"score": 0.5},
    )
    assert result["rows"] == [{"double": 1.0}]


def test_a_command_of_several_statements_then_a_query(
    credentials: CredentialStore, target: Target
) -> None:
    result = run(
        {
            "auth": "warehouse",
            "command": "CREATE TABLE t (a int, b text); INSERT INTO t VALUES (1, 'x'), (2, 'y');"
            " UPDATE t SET b = 'z' WHERE a = 2",
            "query": "SELECT a, b FROM t WHERE a >= %s ORDER BY a",
            "params": [1],
        },
        context(credentials),
    )
    assert result == {
        "rows": [{"a": 1, "b": "x"}, {"a": 2, "b": "z"}],
        "columns": ["a", "b"],
        "rowcount": 2,
    }
    written = run({"auth": "warehouse", "command": "DELETE FROM t"}, context(credentials))
    assert written == {"rows": [], "columns": [], "rowcount": 2}


def test_a_failing_statement_rolls_back_the_whole_step(
    credentials: CredentialStore, target: Target
) -> None:
    with target.connect() as conn:
        conn.execute("CREATE TABLE t (a int)")
    error = fails(
        {"auth": "warehouse", "command": "INSERT INTO t VALUES (1)", "query": "SELECT 1/0"},
        context(credentials),
    )
    assert error.error_type == "postgres.22012"
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_table_and_data_insert_a_row_with_returning(
    credentials: CredentialStore, target: Target
) -> None:
    with target.connect() as conn:
        conn.execute(
            "CREATE TABLE execution_decisions (id serial PRIMARY KEY, execution_id bigint,"
            " action text, reasoning text, details jsonb, tags text[],"
            " decided_at timestamptz DEFAULT now())"
        )
    ctx = context(credentials)
    row = {
        "execution_id": 7,
        "action": "approve",
        "reasoning": "looks fine'); DROP TABLE execution_decisions; --",
        "details": {"score": 0.85, "by": "ann"},
        "tags": ["a", "b"],
    }
    result = run(
        {"auth": "warehouse", "table": "public.execution_decisions", "data": row,
         "returning": ["id", "decided_at"]},
        ctx,
    )  # fmt: skip
    assert result["columns"] == ["id", "decided_at"]
    assert result["rowcount"] == 1
    assert result["rows"][0]["id"] == 1
    assert isinstance(result["rows"][0]["decided_at"], str)  # JSON-safe
    star = run(
        {"auth": "warehouse", "table": "execution_decisions", "data": {"action": "reject"},
         "returning": "*"},
        ctx,
    )  # fmt: skip
    assert star["rows"][0]["action"] == "reject" and star["rows"][0]["id"] == 2
    plain = run(
        {"auth": "warehouse", "table": "execution_decisions", "data": {"action": "override"}}, ctx
    )
    assert plain == {"rows": [], "columns": [], "rowcount": 1}
    with target.connect() as conn:
        stored = conn.execute(
            "SELECT reasoning, details, tags FROM execution_decisions WHERE id = 1"
        ).fetchone()
    assert stored == (row["reasoning"], row["details"], row["tags"])
    orjson.dumps(result)


@pytest.mark.parametrize(
    "bad",
    [
        {"table": "y", "data": {"x; DROP TABLE y": 1}},
        {"table": "y; DROP TABLE y", "data": {"a": 1}},
        {"table": "public.y.z", "data": {"a": 1}},
        {"table": "y", "data": {"a": 1}, "returning": ["a", "1; DROP TABLE y"]},
        {"table": "y", "data": {'a" text); DROP TABLE y; --': 1}},
    ],
    ids=["column", "table", "dotted-table", "returning", "quote"],
)
def test_a_bad_identifier_is_a_clear_error_and_nothing_runs(
    credentials: CredentialStore, target: Target, bad: dict[str, Any]
) -> None:
    with target.connect() as conn:
        conn.execute("CREATE TABLE y (a int)")
    error = fails({"auth": "warehouse", **bad}, context(credentials))
    assert error.error_type == "ConfigError"
    assert "is not a valid identifier" in error.message and "nothing was run" in error.message
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM y").fetchone() == (0,)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"query": "SELECT 1", "table": "t", "data": {"a": 1}},
        {"table": "t"},
        {"table": "t", "data": {}},
        {"query": "SELECT 1", "returning": "*"},
    ],
    ids=["nothing", "query-and-table", "table-only", "empty-data", "returning-alone"],
)
def test_incomplete_configs_are_config_errors(
    credentials: CredentialStore, config: dict[str, Any]
) -> None:
    assert fails({"auth": "warehouse", **config}, context(credentials)).error_type == "ConfigError"


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "sqlstate", "server_says"),
    [
        ("SELECT * FROM no_such_table", "42P01", 'relation "no_such_table" does not exist'),
        ("SELEC 1", "42601", 'syntax error at or near "SELEC"'),
        ("INSERT INTO u VALUES (1)", "23505", "duplicate key value violates unique constraint"),
        ("SELECT 'abc'::int", "22P02", "invalid input syntax for type integer"),
    ],
)
def test_server_errors_are_typed_by_sqlstate(
    credentials: CredentialStore,
    target: Target,
    statement: str,
    sqlstate: str,
    server_says: str,
) -> None:
    with target.connect() as conn:
        conn.execute("CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1)")
    error = fails({"auth": "warehouse_dsn", "command": statement}, context(credentials))
    assert error.error_type == f"postgres.{sqlstate}"
    assert server_says in error.message
    assert error.details["sqlstate"] == sqlstate
    assert target.password not in error.message and target.dsn not in error.message


def test_a_wrong_password_fails_without_showing_it(
    credentials: CredentialStore, target: Target
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    credentials.set("stale", "postgres", {"dsn": target.dsn.replace(target.password, wrong)})
    error = fails({"auth": "stale", "query": "SELECT 1"}, context(credentials))
    assert error.error_type.startswith("postgres.")
    assert "password authentication failed" in error.message
    assert wrong not in error.message and target.password not in error.message


def test_unknown_or_unresolvable_credentials(credentials: CredentialStore) -> None:
    unknown = fails({"auth": "nope", "query": "SELECT 1"}, context(credentials))
    assert unknown.error_type == "CredentialError"
    assert "no credential named 'nope'" in unknown.message
    unwired = fails({"auth": "warehouse", "query": "SELECT 1"}, context(None))
    assert unwired.error_type == "CredentialError"
    both = fails(
        {"auth": "warehouse", "dsn": "postgresql://x@y/z", "query": "SELECT 1"}, context(None)
    )
    assert both.error_type == "ConfigError"


def test_the_step_timeout_cancels_the_statement(credentials: CredentialStore) -> None:
    with pytest.raises(ToolTimeout):
        run({"auth": "warehouse", "query": "SELECT pg_sleep(10)"}, context(credentials, 0.5))


# --- credentials at rest ----------------------------------------------------------------


def test_credentials_are_encrypted_at_rest(
    credentials: CredentialStore, target: Target, db_url: str, home: Path
) -> None:
    store = open_store(db_url)
    try:
        _columns, rows = store.query(
            "SELECT name, kind, secret, created_at, updated_at FROM noetl.credential ORDER BY name"
        )
    finally:
        store.close()
    assert [r[0] for r in rows] == ["warehouse", "warehouse_dsn"]
    stored = orjson.dumps([[str(v) for v in r] for r in rows]).decode()
    assert target.password not in stored and target.dsn not in stored
    assert target.user not in stored  # the whole value set is ciphertext, not just the password
    key = home / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert credentials.get("warehouse")["password"] == target.password
    assert [c.name for c in credentials.list()] == ["warehouse", "warehouse_dsn"]
    assert target.password not in repr(credentials.list())


def test_set_replaces_and_delete_removes(credentials: CredentialStore) -> None:
    before = {c.name: c for c in credentials.list()}["warehouse"]
    credentials.set("warehouse", "postgres", {"dsn": "postgresql://other@h/db"})
    assert credentials.get("warehouse") == {"dsn": "postgresql://other@h/db"}
    after = {c.name: c for c in credentials.list()}["warehouse"]
    assert after.updated_at >= before.updated_at
    credentials.delete("warehouse")
    with pytest.raises(UnknownCredential):
        credentials.get("warehouse")
    with pytest.raises(UnknownCredential):
        credentials.delete("warehouse")


def test_a_different_key_gives_a_clear_error(
    db_url: str, home: Path, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, Fernet.generate_key().decode())
    store = open_store(db_url)
    try:
        CredentialStore(store, home).set("warehouse", "postgres", {"dsn": target.dsn})
        monkeypatch.setenv(ENV, Fernet.generate_key().decode())
        other = CredentialStore(store, home)
        with pytest.raises(DecryptError, match="cannot be decrypted with the current key"):
            other.get("warehouse")
        error = fails({"auth": "warehouse", "query": "SELECT 1"}, context(other))
    finally:
        store.close()
    assert error.error_type == "CredentialError"
    assert "credential 'warehouse' cannot be decrypted with the current key" in error.message
    assert "$PLAYLOOP_SECRET_KEY" in error.message


def test_a_ciphertext_moved_to_another_name_is_refused(
    credentials: CredentialStore, target: Target, db_url: str
) -> None:
    if db_url.startswith("postgres"):
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE noetl.credential SET secret ="
                " (SELECT secret FROM noetl.credential WHERE name = 'warehouse')"
                " WHERE name = 'warehouse_dsn'"
            )
    else:
        import sqlite3

        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "UPDATE credential SET secret ="
                " (SELECT secret FROM credential WHERE name = 'warehouse')"
                " WHERE name = 'warehouse_dsn'"
            )
        conn.close()
    with pytest.raises(DecryptError, match="belongs to another credential"):
        credentials.get("warehouse_dsn")


# --- redaction --------------------------------------------------------------------------


def test_values_the_server_echoes_are_masked(credentials: CredentialStore, target: Target) -> None:
    ctx = context(credentials)
    error = fails(
        {"auth": "warehouse", "query": "SELECT %s::int", "params": [target.password]}, ctx
    )
    assert error.error_type == "postgres.22P02"
    assert target.password not in error.message and "***" in error.message
    result = run(
        {
            "auth": "warehouse",
            "query": "SELECT %s AS p, current_user AS u",
            "params": [target.password],
        },
        ctx,
    )
    assert result["rows"] == [{"p": "***", "u": target.user}]  # the user name is not a secret


def test_a_dsn_in_the_config_is_redacted_too(target: Target) -> None:
    error = fails(
        {"dsn": target.dsn, "query": "SELECT %s::int", "params": [target.password]}, context(None)
    )
    assert target.password not in error.message
    config = tool("postgres").Config.model_validate({"dsn": target.dsn, "query": "SELECT 1"})
    assert target.password not in repr(config) and target.password not in str(config)


def test_the_redactor_scrubs_an_event(credentials: CredentialStore, target: Target) -> None:
    credentials.get("warehouse")  # decrypting registers the secret values
    event = {
        "event_type": "step.failed",
        "step_name": "record",
        "context": {
            "config": {"dsn": target.dsn, "query": "SELECT 1"},
            "input": {"rows": [[f"prefix {target.password} suffix"]], "n": 3},
        },
        "error_message": f"could not connect with password {target.password}",
        "result": None,
    }
    masked = REDACTOR.redact(event)
    text = orjson.dumps(masked).decode()
    assert target.password not in text
    assert masked["context"]["input"] == {"rows": [["prefix *** suffix"]], "n": 3}
    assert masked["context"]["config"]["query"] == "SELECT 1"
    assert masked["step_name"] == "record" and masked["result"] is None
    unregistered = REDACTOR.redact({"dsn": "postgresql://bob:hunter2-unseen@db:5432/x"})
    assert unregistered == {"dsn": "postgresql://bob:***@db:5432/x"}
    assert REDACTOR.redact("host=db password='a b c' user=x") == "host=db password=*** user=x"


def test_the_redactor_scrubs_log_records(
    credentials: CredentialStore,
    target: Target,
    redacting_logs: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    credentials.get("warehouse")
    with caplog.at_level(logging.DEBUG, logger="playloop"):
        logging.getLogger("playloop").warning("connecting to %s", target.dsn)
        logging.getLogger("playloop.tools.postgres").info("password is %s", target.password)
        try:
            raise RuntimeError(f"boom {target.password}")
        except RuntimeError:
            logging.getLogger("playloop.worker").exception("step failed")
    assert len(caplog.records) == 3
    handler = logging.StreamHandler()
    rendered = "\n".join(handler.format(r) for r in caplog.records)
    assert target.password not in caplog.text and target.password not in rendered
    assert "password is ***" in caplog.text
    assert "RuntimeError: boom ***" in rendered
    record = logging.LogRecord(
        "other", logging.INFO, __file__, 1, "pw %s", (target.password,), None
    )
    assert REDACTOR.filter.filter(record) and record.getMessage() == "pw ***"


# --- through the engine ------------------------------------------------------------------


def test_a_playbook_run_keeps_the_password_out_of_events_and_logs(
    credentials: CredentialStore,
    target: Target,
    db_url: str,
    home: Path,
    write_playbook: Any,
    redacting_logs: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with target.connect() as conn:
        conn.execute("CREATE TABLE execution_decisions (execution_id bigint, action text)")
    playbook = write_playbook(
        f"""apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: pg, path: tests/pg}}
workflow:
  - step: record_decision
    tool:
      kind: postgres
      auth: warehouse
      table: execution_decisions
      data: {{execution_id: "{{{{ execution_id }}}}", action: approve}}
      returning: "*"
    next: [{{step: echo}}]
  - step: echo
    tool:
      kind: postgres
      dsn: "{target.dsn}"
      query: "SELECT count(*) AS n FROM execution_decisions"
"""
    )
    with caplog.at_level(logging.DEBUG), Engine(home, db=db_url) as engine:
        summary = engine.run(playbook, timeout=60)
        events = engine.events(int(summary["execution_id"]))
    assert summary["status"] == "completed", summary
    assert summary["steps"]["echo"]["result"]["rows"] == [{"n": 1}]
    stored = orjson.dumps(events, default=str)
    assert target.password.encode() not in stored
    assert target.password not in caplog.text
