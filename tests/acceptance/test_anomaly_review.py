"""``examples/anomaly_review.yaml`` end to end: a drifted quality score pauses for a person.

The history (20 normal batches) is run in this process on the backend's database; then the
real ``playloop`` command runs a normal batch, which loads at once, and a drifted one,
which pauses at the approval step until a data steward approves it from a second terminal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from playloop.runtime import Engine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "anomaly_review.yaml"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def pending(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = cli(env, "decisions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, Any]] = json.loads(listed.stdout) if listed.stdout.strip() else []
    return found


def test_a_drifted_score_pauses_for_review_and_normal_ones_do_not(
    tmp_path: Path, db_url: str, playloop_env: dict[str, str]
) -> None:
    env = playloop_env
    with Engine(tmp_path / "home", db=db_url) as engine:
        for batch in range(20):
            summary = engine.run(EXAMPLE, {"batch": batch}, timeout=60)
            assert summary["status"] == "completed", summary
            assert set(summary["steps"]) == {"validate_data_quality", "load"}
    normal = cli(env, "run", str(EXAMPLE), "--set", "batch=21", "--json")
    assert normal.returncode == 0, normal.stderr
    summary = json.loads(normal.stdout)
    assert set(summary["steps"]) == {"validate_data_quality", "load"}
    assert summary["result"] == {"loaded": True, "score": 0.89}
    assert pending(env) == []

    run = subprocess.Popen(
        [sys.executable, "-m", "playloop.cli", "run", str(EXAMPLE), "--set", "score=0.55", "--set", "batch=2", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while not (waiting := pending(env)):
            assert run.poll() is None and time.time() < deadline, run.communicate()
            time.sleep(0.2)
        (request,) = waiting
        assert request["step"] == "review"
        assert request["prompt"].startswith(
            "quality_score 0.55 is far from its usual 0.9 (robust z "
        )
        shown = cli(env, "executions", "show", request["execution_id"], "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "paused"
        done = cli(
            env,
            "approve",
            request["decision_id"],
            "--as",
            "data-steward",
            "-m",
            "new scale upstream",
        )
        assert done.returncode == 0, done.stderr
        out, errors = run.communicate(timeout=60)
        assert run.returncode == 0, errors
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    drifted = json.loads(out)
    assert list(drifted["steps"]) == ["validate_data_quality", "review", "load"]
    assert drifted["result"] == {"loaded": True, "score": 0.55}
    events = json.loads(cli(env, "events", "show", drifted["execution_id"], "--json").stdout)
    found = [e["meta"] for e in events if e["event_type"] == "anomaly.detected"]
    # (a fresh ``playloop`` process starts its python children on the first step, which
    # may show as a duration anomaly against the warm history: on_anomaly ignores it)
    drifts = sorted((m["step"], m["metric"]) for m in found if m["kind"] == "result_drift")
    # the score drifted where it was measured, and where ``load`` passed it on
    assert drifts == [("load", "score"), ("validate_data_quality", "quality_score")]
    (drift,) = [m for m in found if m["metric"] == "quality_score"]
    assert drift["value"] == 0.55 and drift["baseline"]["n"] == 21
