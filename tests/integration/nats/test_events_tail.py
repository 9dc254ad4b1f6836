"""``playloop events tail`` follows the stream: live, filtered, replayed, stopped by Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from nats_helpers import attach_publisher, chain_playbook, make_engine

ROOT = Path(__file__).resolve().parents[3]
TAIL = [sys.executable, "-m", "playloop.cli_events_tail"]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_tail_follows_one_playbook_live_and_stops_on_ctrl_c(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = chain_playbook(tmp_path / "chain.yaml", "chain", steps=4)
    out, err = tmp_path / "tail.out", tmp_path / "tail.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        command = [*TAIL, "--nats", nats_url, "--playbook", "tests/nats/chain", "--json"]
        tail = subprocess.Popen(command, stdout=stdout, stderr=stderr)
    try:
        wait_for(lambda: "following" in err.read_text(), 30, "the tail to subscribe")
        with make_engine(tmp_path / "home", db_url, nats_url, monkeypatch) as engine:
            publisher = attach_publisher(engine, nats_url)
            try:
                other = engine.run(ROOT / "examples" / "hello.yaml", timeout=60)
                execution_id = engine.start(chain)
                assert engine.wait(execution_id, timeout=60)["status"] == "completed"
                assert publisher.wait_published(timeout=30)
                expected = engine.events(execution_id)
            finally:
                publisher.stop()
        wait_for(lambda: len(lines(out)) >= len(expected), 30, "the tail to print every event")
        time.sleep(0.3)  # nothing more may come: the other playbook is filtered out
        tail.send_signal(signal.SIGINT)
        assert tail.wait(30) == 0, err.read_text()
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    got = [orjson.loads(line) for line in lines(out)]
    assert [(int(e["execution_id"]), e["seq"]) for e in got] == [
        (e.execution_id, e.seq) for e in expected
    ]
    assert all(e["execution_id"] != other["execution_id"] for e in got)


def test_tail_replays_one_execution_from_the_start(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_engine(tmp_path / "home", db_url, nats_url, monkeypatch) as engine:
        publisher = attach_publisher(engine, nats_url)
        try:
            first = engine.run(ROOT / "examples" / "hello.yaml", timeout=60)
            second = engine.run(ROOT / "examples" / "hello.yaml", timeout=60)
            assert publisher.wait_published(timeout=30)
            expected = engine.events(int(second["execution_id"]))
        finally:
            publisher.stop()
    command = [*TAIL, "--nats", nats_url, "--from-start", "--execution", second["execution_id"]]
    command += ["--limit", str(len(expected))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert len(printed) == len(expected)
    for line, event in zip(printed, expected, strict=True):
        assert f" {second['execution_id']} #{event.seq} {event.event_type}" in line
        assert first["execution_id"] not in line
    assert "examples/hello" in printed[0]


def test_tail_reports_an_unreachable_server() -> None:
    done = subprocess.run(
        [*TAIL, "--nats", "nats://127.0.0.1:1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "cannot follow events at nats://127.0.0.1:1" in done.stderr
