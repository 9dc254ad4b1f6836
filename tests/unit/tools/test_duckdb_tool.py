"""The ``duckdb`` tool: statements, parameters, JSON-safe rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from playloop.tools.base import ToolContext, ToolError, ToolTimeout
from playloop.tools.duckdb import DuckdbConfig, DuckdbTool


def _ctx(**kw: object) -> ToolContext:
    return ToolContext(execution_id=1, step="db", iteration=None, attempt=1, **kw)  # type: ignore[arg-type]


def run(
    config: dict[str, object], input: dict[str, object] | None = None, **ctx: object
) -> dict[str, object]:
    result = DuckdbTool().run(DuckdbConfig.model_validate(config), dict(input or {}), _ctx(**ctx))
    assert isinstance(result, dict)
    return result


CREATE = (
    "CREATE TABLE t (id INTEGER, name VARCHAR, score DOUBLE);"
    "INSERT INTO t VALUES (1, 'a', 0.5), (2, 'b', 0.9), (3, 'c', 0.1);"
)


def test_in_memory_create_insert_select() -> None:
    out = run({"command": CREATE, "query": "SELECT id, name FROM t WHERE score > 0.3 ORDER BY id"})
    assert out == {
        "rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "columns": ["id", "name"],
        "rowcount": 2,
    }


def test_positional_and_named_params() -> None:
    out = run({"command": CREATE, "query": "SELECT name FROM t WHERE id = ?", "params": [2]})
    assert out["rows"] == [{"name": "b"}]
    out = run(
        {"command": CREATE, "query": "SELECT name FROM t WHERE id = $id", "params": {"id": 3}}
    )
    assert out["rows"] == [{"name": "c"}]


def test_input_as_named_params_only_those_used() -> None:
    out = run(
        {"command": CREATE, "query": "SELECT count(*) AS n FROM t WHERE score >= $min"},
        {"min": 0.5, "unrelated": "x"},
    )
    assert out["rows"] == [{"n": 2}]


def test_writes_report_rows_changed(tmp_path: Path) -> None:
    db = str(tmp_path / "w.duckdb")
    run({"database": db, "command": CREATE})
    out = run({"database": db, "command": "UPDATE t SET score = 0 WHERE id < 3"})
    assert out == {"rows": [], "columns": [], "rowcount": 2}
    out = run({"database": db, "command": "INSERT INTO t VALUES (4, 'd', 1.0) RETURNING id, name"})
    assert out["rows"] == [{"id": 4, "name": "d"}]
    assert run({"database": db, "query": "SELECT count(*) AS n FROM t"})["rows"] == [{"n": 4}]


def test_relative_file_against_the_playbook_dir(tmp_path: Path) -> None:
    run(
        {"database": "d/x.duckdb", "command": "CREATE TABLE x (v INT)"},
        playbook_file=tmp_path / "pb.yaml",
    )
    assert (tmp_path / "d" / "x.duckdb").exists()


def test_values_are_json_safe() -> None:
    out = run(
        {
            "query": "SELECT DATE '2024-05-01' AS d, TIMESTAMP '2024-05-01 10:30:00' AS ts, "
            "1.25::DECIMAL(10,2) AS m, 7::DECIMAL(10,0) AS whole, [1, 2] AS l, "
            "{'k': DATE '2024-01-02'} AS s, 'ab'::BLOB AS b, INTERVAL 90 SECOND AS i, "
            "'3f1c2b7e-0000-4000-8000-000000000000'::UUID AS u, 10::HUGEINT AS h"
        }
    )
    assert out["rows"] == [
        {
            "d": "2024-05-01",
            "ts": "2024-05-01T10:30:00",
            "m": 1.25,
            "whole": 7,
            "l": [1, 2],
            "s": {"k": "2024-01-02"},
            "b": "YWI=",
            "i": 90.0,
            "u": "3f1c2b7e-0000-4000-8000-000000000000",
            "h": 10,
        }
    ]


def test_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as info:
        run({"query": "SELECT * FROM missing"})
    assert info.value.error_type == "duckdb.CatalogException"
    with pytest.raises(ToolError) as info:
        run({"query": "SELEC 1"})
    assert info.value.error_type == "duckdb.ParserException"


def test_needs_command_or_query() -> None:
    with pytest.raises(ToolError) as info:
        run({})
    assert info.value.error_type == "ConfigError"


def test_timeout_interrupts() -> None:
    with pytest.raises(ToolTimeout):
        run({"query": "SELECT count(*) FROM range(100000000000) a"}, timeout=0.3)
