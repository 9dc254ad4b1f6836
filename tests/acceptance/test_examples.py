"""Every example playbook, run by the real ``playloop`` command as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DB = [""]


@pytest.fixture(autouse=True)
def _backend(db_url: str) -> None:
    DB[0] = db_url


def playloop(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLAYLOOP_HOME": str(home), "PLAYLOOP_DB": DB[0]}
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_json(*args: str, home: Path) -> dict[str, Any]:
    done = playloop("run", *args, "--json", home=home)
    assert done.returncode in (0, 1), done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    assert (done.returncode == 0) == (summary["status"] == "completed")
    return summary


def test_every_example_is_covered_here() -> None:
    covered = {
        "quality_gate_approval.yaml",  # tests/acceptance/test_quality_gate_approval.py
        "anomaly_review.yaml",  # tests/acceptance/test_anomaly_review.py
        "quality_gate_external_approval.yaml",  # test_quality_gate_external_approval.py
        "hello.yaml",
        "quality_gate.yaml",
        "fan_out_join.yaml",
        "loop.yaml",
        "flaky_retry.yaml",
        "http_call.yaml",
        "sqlite_report.yaml",
        "child_playbook.yaml",
        "child/greet.yaml",
    }
    found = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.yaml")}
    assert found == covered


def test_hello(tmp_path: Path) -> None:
    s = run_json(str(EXAMPLES / "hello.yaml"), "--set", "name=Ada", home=tmp_path / "home")
    assert s["status"] == "completed"
    assert s["result"] == {"greeting": "Hello, Ada!", "letters": 8}
    assert list(s["steps"]) == ["greet", "measure"]
    assert s["steps"]["greet"]["attempts"] == 1 and s["events"] == 6


@pytest.mark.parametrize("score,step", [("0.85", "await_human_approval"), ("0.95", "load")])
def test_quality_gate_routes_on_score(tmp_path: Path, score: str, step: str) -> None:
    s = run_json(
        str(EXAMPLES / "quality_gate.yaml"), "--set", f"score={score}", home=tmp_path / "home"
    )
    assert s["status"] == "completed"
    assert set(s["steps"]) == {"validate_data_quality", step}
    if step == "await_human_approval":
        assert s["result"] == {
            "needs_review": True,
            "issue": "Data quality below threshold",
            "score": 0.85,
        }


def test_fan_out_join(tmp_path: Path) -> None:
    s = run_json(str(EXAMPLES / "fan_out_join.yaml"), home=tmp_path / "home")
    assert s["result"] == {"grand_total": 555}
    assert s["steps"]["combine"]["attempts"] == 1


def test_loop(tmp_path: Path) -> None:
    s = run_json(str(EXAMPLES / "loop.yaml"), home=tmp_path / "home")
    assert s["result"] == {"squares": [1, 4, 9, 16, 25, 36, 49, 64], "sum": 204}


def test_flaky_retry(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    s = run_json(
        str(EXAMPLES / "flaky_retry.yaml"), "--set", f"counter_file={counter}", home=tmp_path
    )
    assert s["status"] == "completed"
    assert s["steps"]["call_flaky_service"]["attempts"] == 3
    assert s["result"] == {"calls": 3}
    counter.unlink()
    s = run_json(
        str(EXAMPLES / "flaky_retry.yaml"),
        "--set",
        f"counter_file={counter}",
        "--set",
        "fail_times=9",
        home=tmp_path / "home",
    )
    assert s["status"] == "failed" and s["steps"]["call_flaky_service"]["attempts"] == 4


class _Orders(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        order = self.path.rsplit("/", 1)[-1]
        body = json.dumps(
            {"id": order, "status": "shipped" if order == "42" else "packing"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def orders_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Orders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_call(tmp_path: Path, orders_server: str) -> None:
    s = run_json(
        str(EXAMPLES / "http_call.yaml"), "--set", f"base_url={orders_server}", home=tmp_path
    )
    assert s["steps"]["fetch_order"]["result"]["status_code"] == 200
    assert s["steps"]["fetch_order"]["result"]["data"] == {"id": "42", "status": "shipped"}
    assert s["result"] == {"shipped": True}
    s = run_json(
        str(EXAMPLES / "http_call.yaml"),
        "--set",
        f"base_url={orders_server}",
        "--set",
        "order_id=7",
        home=tmp_path / "home",
    )
    assert s["result"] == {"shipped": False}


def test_sqlite_report(tmp_path: Path) -> None:
    db = tmp_path / "sales.db"
    s = run_json(
        str(EXAMPLES / "sqlite_report.yaml"), "--set", f"database={db}", home=tmp_path / "home"
    )
    assert s["status"] == "completed", s.get("error")
    assert s["steps"]["summarise"]["result"]["rows"] == [
        {"region": "eu", "total": 200.0},
        {"region": "us", "total": 340.0},
    ]
    assert s["result"]["rows"] == [{"best": 340.0, "regions": 2}]


def test_child_playbook(tmp_path: Path) -> None:
    s = run_json(str(EXAMPLES / "child_playbook.yaml"), home=tmp_path / "home")
    assert s["status"] == "completed", s.get("error")
    assert s["result"] == {"count": 2, "greetings": ["Hello, Ada", "Hello, Grace"]}
    listed = playloop("executions", "list", "--json", home=tmp_path / "home")
    rows = json.loads(listed.stdout)
    children = [r for r in rows if r["parent_execution_id"] == s["execution_id"]]
    assert len(children) == 2 and all(r["status"] == "completed" for r in children)
