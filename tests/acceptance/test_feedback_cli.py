"""``playloop feedback``, ``resolve`` and ``failures`` as subprocesses, on the test backend.

Runs through ``playloop.cli`` once it registers the three commands, else through
``playloop.cli_feedback`` (the same functions, on their own app).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

Query = Callable[..., list[tuple[Any, ...]]]

PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: daily_load, path: data/ingestion/daily_load}
workload: {rows: 10, limit: 100}
workflow:
  - step: extract
    tool: {kind: noop, result: {rows: "{{ workload.rows }}"}}
    next: [{step: load}]
  - step: load
    tool:
      kind: python
      input: {rows: "{{ workload.rows }}", limit: "{{ workload.limit }}"}
      code: |
        if rows > limit:
            raise RuntimeError(f"{rows} rows over the limit of {limit}")
        result = {"loaded": rows}
"""


def _module() -> str:
    from playloop.cli import app

    names = {command.name for command in app.registered_commands}
    return (
        "playloop.cli" if {"feedback", "resolve", "failures"} <= names else "playloop.cli_feedback"
    )


MODULE = _module()


@pytest.fixture
def cli(playloop_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, module: str = MODULE) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            env=playloop_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


Cli = Callable[..., subprocess.CompletedProcess[str]]


def _run(cli: Cli, playbook: Path, *sets: str) -> dict[str, Any]:
    args = [a for s in sets for a in ("--set", s)]
    done = cli("run", str(playbook), *args, "--json", module="playloop.cli")
    assert done.returncode in (0, 1), done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _backdate(db_url: str, execution_id: int, days: int) -> None:
    """Move an execution's events and row ``days`` into the past (as if it ran then)."""
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as pg:
            shift = f"interval '{days} days'"
            pg.execute(
                f"UPDATE noetl.event SET created_at = created_at - {shift} WHERE execution_id = %s",
                (execution_id,),
            )
            pg.execute(
                f"UPDATE noetl.execution SET started_at = started_at - {shift}, "
                f"ended_at = ended_at - {shift} WHERE execution_id = %s",
                (execution_id,),
            )
        return

    def earlier(stamp: str) -> str:
        return (datetime.fromisoformat(stamp) - timedelta(days=days)).isoformat(
            timespec="microseconds"
        )

    with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn, conn:
        for event_id, stamp in conn.execute(
            "SELECT event_id, created_at FROM event WHERE execution_id = ?", (execution_id,)
        ).fetchall():
            conn.execute(
                "UPDATE event SET created_at = ? WHERE event_id = ?", (earlier(stamp), event_id)
            )
        started, ended = conn.execute(
            "SELECT started_at, ended_at FROM execution WHERE execution_id = ?", (execution_id,)
        ).fetchall()[0]
        conn.execute(
            "UPDATE execution SET started_at = ?, ended_at = ? WHERE execution_id = ?",
            (earlier(started), earlier(ended), execution_id),
        )


def _count(db_query: Query) -> int:
    return int(db_query("SELECT count(*) FROM noetl.event")[0][0])


def test_feedback_days_after_the_run(
    cli: Cli, write_playbook: Callable[..., Path], db_url: str, db_query: Query
) -> None:
    summary = _run(cli, write_playbook(PLAYBOOK))
    assert summary["status"] == "completed"
    execution_id = int(summary["execution_id"])
    _backdate(db_url, execution_id, days=3)

    event = _json(
        cli(
            "feedback",
            str(execution_id),
            "--label",
            "good",
            "--score",
            "0.93",
            "--metric",
            "conversion=0.031",
            "--metric",
            "users=1200",
            "--metric",
            "variant=B",
            "--step",
            "load",
            "--comment",
            "A/B test: variant B wins",
            "--actor",
            "ab-service",
            "--json",
        )
    )

    assert event["event_type"] == "feedback.received"
    assert event["execution_id"] == str(execution_id)
    assert (event["step_name"], event["actor"]) == ("load", "ab-service")
    assert event["meta"] == {
        "label": "good",
        "score": 0.93,
        "metrics": {"conversion": 0.031, "users": 1200, "variant": "B"},
        "comment": "A/B test: variant B wins",
    }
    shown = _json(cli("executions", "show", str(execution_id), "--json", module="playloop.cli"))
    assert shown["status"] == "completed"
    ended = datetime.fromisoformat(shown["ended_at"])
    assert datetime.fromisoformat(event["created_at"]) - ended > timedelta(days=2, hours=23)
    events = _json(cli("events", str(execution_id), "--json", module="playloop.cli"))
    assert events[-1]["event_id"] == event["event_id"]
    assert events[-2]["event_type"] == "execution.finished"

    plain = cli("feedback", str(execution_id), "--label", "bad")
    assert plain.returncode == 0, plain.stderr
    assert f"feedback 'bad' recorded on execution {execution_id}" in plain.stdout


def test_bad_feedback_exits_2_and_appends_nothing(
    cli: Cli, write_playbook: Callable[..., Path], db_query: Query
) -> None:
    execution_id = _run(cli, write_playbook(PLAYBOOK))["execution_id"]
    before = _count(db_query)
    cases = [
        (("12345", "--label", "good"), "no execution 12345"),
        ((execution_id, "--label", "great"), "great"),
        ((execution_id, "--label", "good", "--metric", "nothing"), "--metric takes NAME=VALUE"),
        ((execution_id, "--label", "good", "--score", "nan"), "finite"),
        ((execution_id, "--label", "good", "--score", "high"), "Invalid value for '--score'"),
        ((execution_id, "--label", "good", "--step", "nope"), "has no step 'nope'"),
        (("abc", "--label", "good"), "execution id must be a number"),
    ]
    for args, message in cases:
        done = cli("feedback", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert _count(db_query) == before


def test_failures_resolve_and_a_later_run(
    cli: Cli, write_playbook: Callable[..., Path], db_query: Query
) -> None:
    playbook = write_playbook(PLAYBOOK)
    failed = _run(cli, playbook, "rows=500")
    assert failed["status"] == "failed"
    failed_id = failed["execution_id"]

    unresolved = _json(cli("failures", "--unresolved", "--json"))
    assert [(f["event_type"], f["step_name"]) for f in unresolved] == [
        ("execution.failed", "load"),
        ("step.failed", "load"),
    ]
    assert all(f["execution_id"] == failed_id and not f["resolutions"] for f in unresolved)
    step_failed = unresolved[1]

    event = _json(
        cli("resolve", step_failed["event_id"], "--note", "asked for a bigger limit", "--json")
    )
    assert event["event_type"] == "resolution.recorded"
    assert event["execution_id"] == failed_id
    assert event["meta"]["kind"] == "manual"
    assert event["meta"]["failure"]["event_id"] == step_failed["event_id"]

    left = _json(cli("failures", "--unresolved", "--json"))
    assert [f["event_type"] for f in left] == ["execution.failed"]

    # resolving what is no failure, or nothing, exits 2 and appends nothing
    before = _count(db_query)
    started_id = db_query(
        "SELECT event_id FROM noetl.event WHERE execution_id = ? AND seq = 1", int(failed_id)
    )[0][0]
    for event_id, message in [
        (str(started_id), "is a execution.started event, not a failure"),
        ("12345", "no event 12345"),
        ("x", "event id must be a number"),
    ]:
        done = cli("resolve", event_id, "--note", "n")
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
    done = cli("resolve", step_failed["event_id"], "--note", "  ")
    assert done.returncode == 2 and "note is empty" in done.stderr
    assert _count(db_query) == before

    # a later run with a bigger limit resolves what is left
    fixed = _run(cli, playbook, "rows=500", "limit=1000")
    assert fixed["status"] == "completed"
    assert _json(cli("failures", "--unresolved", "--json")) == []
    listed = _json(cli("failures", "--playbook", "data/ingestion/daily_load", "--json"))
    by_type = {f["event_type"]: f for f in listed}
    assert [r["kind"] for r in by_type["step.failed"]["resolutions"]] == ["manual", "later_run"]
    (later,) = by_type["execution.failed"]["resolutions"]
    assert later["kind"] == "later_run"
    assert later["resolved_by"]["execution_id"] == fixed["execution_id"]
    assert later["changed"] == {"workload": {"limit": {"before": 100, "after": 1000}}}
    assert _json(cli("failures", "--playbook", "other/path", "--json")) == []

    table = cli("failures")
    assert table.returncode == 0, table.stderr
    assert "later_run" in table.stdout and "manual: asked for a bigger limit" in table.stdout
    assert "no failures left unresolved" in cli("failures", "--unresolved").stdout


def test_commands_refuse_a_missing_database(tmp_path: Path) -> None:
    env = {**os.environ, "PLAYLOOP_HOME": str(tmp_path / "none")}
    env.pop("PLAYLOOP_DB", None)
    for args in (
        ["failures"],
        ["feedback", "1", "--label", "good"],
        ["resolve", "1", "--note", "n"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", MODULE, *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 2, done.stderr
        assert "no playloop database" in done.stderr
    assert not (tmp_path / "none" / "playloop.db").exists()
