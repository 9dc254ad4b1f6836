"""The ``sqlite`` tool: scripts, parameters (qmark, named, from input), rows as dicts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from playloop.tools.base import ToolContext, ToolError, ToolTimeout
from playloop.tools.sqlite import SqliteConfig, SqliteTool


def _ctx(**kw: object) -> ToolContext:
    return ToolContext(execution_id=1, step="db", iteration=None, attempt=1, **kw)  # type: ignore[arg-type]


def run(
    config: dict[str, object], input: dict[str, object] | None = None, **ctx: object
) -> dict[str, object]:
    result = SqliteTool().run(SqliteConfig.model_validate(config), dict(input or {}), _ctx(**ctx))
    assert isinstance(result, dict)
    return result


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "t.db")
    run(
        {
            "database": path,
            "command": "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL);\n"
            "INSERT INTO t (name, score) VALUES ('a', 0.5), ('b', 0.9);",
        }
    )
    return path


def test_script_then_select(db: str) -> None:
    out = run({"database": db, "query": "SELECT id, name, score FROM t ORDER BY id"})
    assert out == {
        "rows": [{"id": 1, "name": "a", "score": 0.5}, {"id": 2, "name": "b", "score": 0.9}],
        "columns": ["id", "name", "score"],
        "rowcount": 2,
    }


def test_qmark_params(db: str) -> None:
    out = run({"database": db, "query": "SELECT name FROM t WHERE score > ?", "params": [0.6]})
    assert out["rows"] == [{"name": "b"}]


def test_named_params_and_writes_are_committed(db: str) -> None:
    out = run(
        {
            "database": db,
            "command": "INSERT INTO t (name, score) VALUES (:name, :score)",
            "params": {"name": "c", "score": 0.1},
        }
    )
    assert out == {"rows": [], "columns": [], "rowcount": 1}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    conn.close()


def test_input_as_named_params(db: str) -> None:
    out = run({"database": db, "query": "SELECT name FROM t WHERE name = :who"}, {"who": "a"})
    assert out["rows"] == [{"name": "a"}]


def test_update_rowcount(db: str) -> None:
    out = run({"database": db, "command": "UPDATE t SET score = 1.0"})
    assert out["rowcount"] == 2


def test_script_rowcount_counts_changes(tmp_path: Path) -> None:
    out = run(
        {
            "database": str(tmp_path / "s.db"),
            "command": "CREATE TABLE x (v); INSERT INTO x VALUES (1); INSERT INTO x VALUES (2), (3);",
        }
    )
    assert out["rowcount"] == 3


def test_command_then_query(tmp_path: Path) -> None:
    out = run(
        {
            "database": str(tmp_path / "cq.db"),
            "command": "CREATE TABLE k (v TEXT); INSERT INTO k VALUES ('x');",
            "query": "SELECT v FROM k",
        }
    )
    assert out["rows"] == [{"v": "x"}]


def test_relative_path_resolves_against_the_playbook_dir(tmp_path: Path) -> None:
    playbook = tmp_path / "flows" / "pb.yaml"
    run({"database": "data/rel.db", "command": "CREATE TABLE r (v)"}, playbook_file=playbook)
    assert (tmp_path / "flows" / "data" / "rel.db").exists()


def test_relative_path_without_a_playbook_uses_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run({"database": "here.db", "command": "CREATE TABLE r (v)"})
    assert (tmp_path / "here.db").exists()


def test_blobs_are_base64(tmp_path: Path) -> None:
    out = run({"database": ":memory:", "query": "SELECT x'00ff' AS b"})
    assert out["rows"] == [{"b": "AP8="}]


def test_errors_are_typed_by_sqlite_class(db: str) -> None:
    with pytest.raises(ToolError) as info:
        run({"database": db, "query": "SELECT * FROM missing"})
    assert info.value.error_type == "sqlite3.OperationalError"
    assert "missing" in info.value.message
    with pytest.raises(ToolError) as info:
        run({"database": db, "command": "INSERT INTO t (id, name) VALUES (1, 'dup')"})
    assert info.value.error_type == "sqlite3.IntegrityError"


def test_failed_script_rolls_back(db: str) -> None:
    with pytest.raises(ToolError):
        run(
            {
                "database": db,
                "command": "INSERT INTO t (name) VALUES (?)",
                "params": ["ok"],
                "query": "SELECT nope FROM t",
            }
        )
    assert run({"database": db, "query": "SELECT count(*) AS n FROM t"})["rows"] == [{"n": 2}]


def test_params_with_several_statements_is_an_error(db: str) -> None:
    with pytest.raises(ToolError, match="single statement"):
        run({"database": db, "command": "SELECT 1; SELECT 2", "params": [1]})


def test_needs_command_or_query() -> None:
    with pytest.raises(ToolError) as info:
        run({"database": ":memory:"})
    assert info.value.error_type == "ConfigError"


def test_timeout_interrupts_a_long_query() -> None:
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(ToolTimeout):
        run({"database": ":memory:", "query": sql}, timeout=0.3)


def test_explicit_params_bind_to_the_query(tmp_path: Path) -> None:
    out = run(
        {
            "database": str(tmp_path / "p.db"),
            "command": "CREATE TABLE k (v INT); INSERT INTO k VALUES (1), (2), (3);",
            "query": "SELECT v FROM k WHERE v >= ?",
            "params": [2],
        }
    )
    assert out["rows"] == [{"v": 2}, {"v": 3}]
