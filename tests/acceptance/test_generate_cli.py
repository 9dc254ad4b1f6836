"""``playloop generate`` as a subprocess: prints or writes a validated draft, never runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def playloop(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLAYLOOP_HOME": str(home)}
    env.pop("PLAYLOOP_LLM_URL", None)
    env.pop("PLAYLOOP_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generate_writes_a_draft_that_validates_and_runs_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert playloop("run", str(ROOT / "examples" / "hello.yaml"), home=home).returncode == 0
    out = tmp_path / "draft.yaml"
    description = "For each file, parse it and count its lines, then report the totals."
    done = playloop("generate", description, "--out", str(out), home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert f"playloop validate {out} && playloop run {out}" in done.stderr
    assert "similar playbooks (vectors)" in done.stderr
    assert playloop("validate", str(out), home=home).returncode == 0
    listed = playloop("executions", "list", "--json", home=home)
    assert len(json.loads(listed.stdout)) == 1  # only the hello run: the draft was not run
    again = playloop("generate", description, "--out", str(out), home=home)
    assert again.returncode == 2 and "--force" in again.stderr


def test_generate_prints_yaml_or_json_without_a_database(tmp_path: Path) -> None:
    done = playloop("generate", "Load the events into DuckDB.", home=tmp_path / "none")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Drafted by `playloop generate`")
    assert "kind: duckdb" in done.stdout
    as_json = playloop("generate", "Load the events into DuckDB.", "--json", home=tmp_path / "none")
    body = json.loads(as_json.stdout)
    assert body["steps"] == ["load_events"] and body["grounding"]["retrieval"] == "none"
    assert not (tmp_path / "none").exists()  # nothing created


def test_generate_with_an_unreachable_llm_fails_clearly(tmp_path: Path) -> None:
    env_home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "playloop.cli", "generate", "Say hello."],
        env={
            **os.environ,
            "PLAYLOOP_HOME": str(env_home),
            "PLAYLOOP_LLM_URL": "http://127.0.0.1:9",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        done.returncode == 2 and "cannot reach the LLM" in done.stderr and "--no-llm" in done.stderr
    )
