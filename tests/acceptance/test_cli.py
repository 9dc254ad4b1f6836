"""The real ``playloop`` command: exit codes, bad input, every subcommand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKEN = sorted((ROOT / "tests" / "fixtures" / "broken").glob("*.yaml"))
HELLO = ROOT / "examples" / "hello.yaml"


def playloop(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLAYLOOP_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _header(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"#\s*(expect|at|field):\s*(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def test_there_are_at_least_20_broken_playbooks() -> None:
    assert len(BROKEN) >= 20


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_playbook_exits_2_naming_file_line_col_and_field(path: Path, tmp_path: Path) -> None:
    header = _header(path)
    for command in (("run", str(path)), ("validate", str(path))):
        done = playloop(*command, home=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        text = " ".join(done.stderr.split())
        assert f"{path}:{header['at']}:" in text
        assert header["expect"] in text
        if header.get("field", "-") != "-":
            assert f"field '{header['field']}'" in text


def test_run_exit_codes_and_json_summary(tmp_path: Path, write_playbook: object) -> None:
    done = playloop("run", str(HELLO), "--json", home=tmp_path)
    assert done.returncode == 0
    summary = json.loads(done.stdout)
    assert set(summary) >= {"execution_id", "status", "playbook_path", "steps", "result", "events"}
    assert summary["steps"]["greet"] == {
        "status": "completed",
        "attempts": 1,
        "duration_ms": summary["steps"]["greet"]["duration_ms"],
        "result": {"greeting": "Hello, world!"},
    }
    failing = tmp_path / "fail.yaml"
    failing.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: f, path: t/f}\n"
        "workflow:\n  - step: boom\n    tool: {kind: python, code: \"raise RuntimeError('boom')\"}\n"
    )
    done = playloop("run", str(failing), home=tmp_path)
    assert done.returncode == 1
    assert "RuntimeError: boom" in done.stdout
    assert playloop("run", str(tmp_path / "missing.yaml"), home=tmp_path).returncode == 2
    assert playloop("run", home=tmp_path).returncode == 2
    assert playloop("run", "--resume", "12345", home=tmp_path).returncode == 2
    assert playloop("run", "--resume", "nope", home=tmp_path).returncode == 2


def test_set_values_parse_as_yaml_scalars_and_nested_keys(tmp_path: Path) -> None:
    playbook = tmp_path / "types.yaml"
    playbook.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t, path: t/types}\n"
        "workload: {db: {host: localhost, port: 5432}}\n"
        "workflow:\n  - step: show\n    tool:\n      kind: python\n"
        '      input: {w: "{{ workload }}"}\n'
        "      code: \"result = {k: [v, type(v).__name__] for k, v in w.items() if k != 'db'} | {'db': w['db']}\"\n"
    )
    done = playloop(
        "run",
        str(playbook),
        "--json",
        "--set",
        "n=42",
        "--set",
        "f=0.5",
        "--set",
        "s='42'",
        "--set",
        "b=true",
        "--set",
        "db.port=6543",
        "--payload",
        '{"extra": [1, 2]}',
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["result"]
    assert result["n"] == [42, "int"] and result["f"] == [0.5, "float"]
    assert result["s"] == ["42", "str"] and result["b"] == [True, "bool"]
    assert result["extra"] == [[1, 2], "list"]
    assert result["db"] == {"host": "localhost", "port": 6543}
    bad = playloop("run", str(playbook), "--set", "novalue", home=tmp_path)
    assert bad.returncode == 2 and "key=value" in bad.stderr
    bad = playloop("run", str(playbook), "--payload", "[1", home=tmp_path)
    assert bad.returncode == 2 and "--payload" in bad.stderr


def test_timeout_2s_ends_an_endless_loop_in_under_4s(tmp_path: Path) -> None:
    playbook = tmp_path / "spin.yaml"
    playbook.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: spin, path: t/spin}\n"
        "workflow:\n  - step: spin\n    timeout: 2s\n    tool:\n      kind: python\n"
        "      code: |\n        while True:\n            pass\n"
    )
    started = time.perf_counter()
    done = playloop("run", str(playbook), "--json", home=tmp_path)
    elapsed = time.perf_counter() - started
    summary = json.loads(done.stdout)
    assert done.returncode == 1
    assert summary["steps"]["spin"]["status"] == "timed_out"
    assert elapsed < 4.0 + 1.5  # the command's own start-up is included here
    events = json.loads(playloop("events", summary["execution_id"], "--json", home=tmp_path).stdout)
    timed_out = [e for e in events if e["event_type"] == "step.timed_out"]
    assert len(timed_out) == 1 and 1900 <= timed_out[0]["duration_ms"] < 4000


def test_inspection_commands(tmp_path: Path) -> None:
    summary = json.loads(playloop("run", str(HELLO), "--json", home=tmp_path).stdout)
    execution_id = summary["execution_id"]
    listed = json.loads(playloop("executions", "list", "--json", home=tmp_path).stdout)
    assert [r["execution_id"] for r in listed] == [execution_id] and listed[0][
        "status"
    ] == "completed"
    shown = json.loads(playloop("executions", "show", execution_id, "--json", home=tmp_path).stdout)
    assert shown == summary
    events = json.loads(playloop("events", execution_id, "--json", home=tmp_path).stdout)
    assert [e["event_type"] for e in events] == [
        "execution.started",
        "step.started",
        "step.finished",
        "step.started",
        "step.finished",
        "execution.finished",
    ]
    table = playloop("events", execution_id, home=tmp_path)
    assert table.returncode == 0 and "execution.finished" in table.stdout.replace("\n", "")
    rows = json.loads(
        playloop(
            "sql",
            "SELECT step_name, status FROM noetl.event WHERE event_type = 'step.finished' ORDER BY seq",
            "--json",
            home=tmp_path,
        ).stdout
    )
    assert rows == [
        {"step_name": "greet", "status": "completed"},
        {"step_name": "measure", "status": "completed"},
    ]
    refused = playloop("sql", "DELETE FROM noetl.event", home=tmp_path)
    assert refused.returncode == 2 and "read-only" in refused.stderr
    assert (
        playloop("sql", "SELECT count(*) FROM noetl.event", "--json", home=tmp_path).stdout.count(
            "6"
        )
        == 1
    )
    assert playloop("events", "999", home=tmp_path).returncode == 2


def test_catalog_register_list_and_validate_and_schema(tmp_path: Path) -> None:
    assert "version 1" in playloop("catalog", "register", str(HELLO), home=tmp_path).stdout
    assert "version 1" in playloop("catalog", "register", str(HELLO), home=tmp_path).stdout
    entries = json.loads(playloop("catalog", "list", "--json", home=tmp_path).stdout)
    assert [(e["path"], e["version"]) for e in entries] == [("examples/hello", 1)]
    ok = playloop("validate", str(HELLO), home=tmp_path)
    assert ok.returncode == 0 and "2 steps" in ok.stdout
    schema = json.loads(playloop("schema", home=tmp_path).stdout)
    assert schema["type"] == "object" and "workflow" in schema["properties"]


def test_db_commands_and_workers_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'playloop.db'}"
    done = playloop("db", "init", "--db", url, home=tmp_path)
    assert done.returncode == 0 and "schema at version" in done.stdout
    status = playloop("db", "status", "--db", url, home=tmp_path)
    assert (
        status.returncode == 0
        and "0001_initial.sql" in status.stdout
        and "no" not in status.stdout.split()
    )
    listed = playloop("workers", "list", "--db", url, home=tmp_path)
    assert listed.returncode == 0 and "worker" in listed.stdout
