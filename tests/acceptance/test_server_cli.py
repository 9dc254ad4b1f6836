"""``playloop server start`` and ``playloop token ...`` as subprocesses, and the CLI's
``--server`` mode against the real server: the same answers as reading the database."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from playloop.runtime import Engine

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello.yaml"
BROKEN = ROOT / "tests" / "fixtures" / "broken" / "duplicate_step.yaml"


def playloop(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text()


@contextmanager
def server(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[Server]:
    """``playloop server start --port 0``; stopped with SIGTERM, which must exit 0."""
    log = tmp_path / f"server-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "playloop.cli", "server", "start", "--port", "0", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text())
            if found:
                break
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Server(found.group(1), process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, log.read_text()


def _token(env: dict[str, str], role: str) -> str:
    done = playloop("token", "create", "--role", role, "--name", f"cli-{role}", env=env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert re.fullmatch(r"pl_[0-9a-f]{16}_[0-9a-f]{64}", token), done.stdout
    assert "shown only now" in done.stderr
    return token


def test_server_needs_a_token_and_says_how_to_make_one(
    tmp_path: Path, playloop_env: dict[str, str]
) -> None:
    with server(tmp_path, playloop_env) as live:
        text = live.stderr()
        assert "auth on" in text
        assert "no API tokens yet" in text
        assert "playloop token create --role admin" in text
        with httpx.Client(base_url=live.url) as client:
            assert client.get("/health").json()["db"] == "ok"
            refused = client.get("/api/executions")
            assert refused.status_code == 401
            assert "Authorization: Bearer" in refused.json()["error"]["message"]


def test_cli_commands_through_the_server_match_the_database(
    tmp_path: Path, playloop_env: dict[str, str], db_url: str
) -> None:
    env = playloop_env
    admin, operator, viewer = (_token(env, role) for role in ("admin", "operator", "viewer"))
    with server(tmp_path, env) as live:
        assert "no API tokens yet" not in live.stderr()
        remote = {**env, "PLAYLOOP_TOKEN": operator}

        done = playloop("catalog", "register", str(HELLO), "--server", live.url, env=remote)
        assert done.returncode == 0, done.stderr
        assert "registered examples/hello version 1" in done.stdout
        broken = playloop("catalog", "register", str(BROKEN), "--server", live.url, env=remote)
        assert broken.returncode == 2
        assert f"{BROKEN}:12:11:" in " ".join(broken.stderr.split())
        assert "duplicate step name 'load'" in broken.stderr
        listed = playloop("catalog", "list", "--server", live.url, "--json", env=remote)
        assert [(e["path"], e["version"]) for e in json.loads(listed.stdout)] == [
            ("examples/hello", 1)
        ]

        with httpx.Client(
            base_url=live.url, headers={"Authorization": f"Bearer {operator}"}
        ) as client:
            started = client.post(
                "/api/execute", json={"path": "examples/hello", "workload": {"name": "Ada"}}
            )
            assert started.status_code == 202, started.text
            execution_id = started.json()["execution_id"]
            # the server runs no steps: a worker (here in this process) finishes the execution
            with Engine(tmp_path / "worker", db=db_url, claim_any=True, processes=1) as worker:
                worker.serve()
                assert worker.wait(int(execution_id), timeout=60)["status"] == "completed"
            other = client.post("/api/execute", json={"path": "examples/hello"}).json()

        for command in (
            ("executions", "list", "--json"),
            ("executions", "show", execution_id, "--json"),
            ("events", execution_id, "--json"),
        ):
            local = playloop(*command, env=env)
            through = playloop(*command, "--server", live.url, "--token", viewer, env=env)
            assert local.returncode == through.returncode == 0, through.stderr
            assert json.loads(through.stdout) == json.loads(local.stdout), command
        shown = json.loads(playloop("executions", "show", execution_id, "--json", env=env).stdout)
        assert shown["result"]["greeting"] == "Hello, Ada!"
        table = playloop("executions", "show", execution_id, "--server", live.url, env=remote)
        assert "completed" in table.stdout

        weak = playloop(
            "executions",
            "cancel",
            other["execution_id"],
            "--server",
            live.url,
            "--token",
            viewer,
            env=env,
        )
        assert weak.returncode == 2
        assert "'operator' role" in weak.stderr
        cancel = playloop(
            "executions", "cancel", other["execution_id"], "--server", live.url, env=remote
        )
        assert cancel.returncode == 0, cancel.stderr
        again = playloop(
            "executions", "cancel", other["execution_id"], "--server", live.url, env=remote
        )
        assert again.returncode == 2
        assert "already ended: cancelled" in again.stderr
        missing = playloop("executions", "show", "999", "--server", live.url, env=remote)
        assert missing.returncode == 2
        assert "no execution 999" in missing.stderr
        bad_id = playloop("events", "1;DROP", "--server", live.url, env=remote)
        assert bad_id.returncode == 2

        tokens = json.loads(playloop("token", "list", "--json", env=env).stdout)
        assert sorted(t["role"] for t in tokens) == ["admin", "operator", "viewer"]
        assert all(admin not in json.dumps(t) for t in tokens)
        operator_id = next(t["token_id"] for t in tokens if t["role"] == "operator")
        revoked = playloop("token", "revoke", operator_id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        refused = playloop("executions", "list", "--server", live.url, env=remote)
        assert refused.returncode == 2
        assert "invalid or revoked" in refused.stderr
        assert playloop("token", "revoke", "0000000000000000", env=env).returncode == 2


def test_no_auth_server_takes_requests_without_a_token(
    tmp_path: Path, playloop_env: dict[str, str]
) -> None:
    with server(tmp_path, playloop_env, "--no-auth") as live:
        assert "auth off" in live.stderr()
        done = playloop("executions", "list", "--server", live.url, "--json", env=playloop_env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == []


def test_an_unreachable_server_is_a_clear_error(playloop_env: dict[str, str]) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = playloop("executions", "list", "--server", f"http://127.0.0.1:{port}", env=playloop_env)
    assert done.returncode == 2
    assert f"cannot reach the server at http://127.0.0.1:{port}" in done.stderr


def test_a_busy_port_is_a_clear_error(playloop_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = playloop("server", "start", "--port", str(port), env=playloop_env)
    assert start.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in start.stderr


@pytest.mark.sqlite_only
def test_db_option_names_the_database(tmp_path: Path, playloop_env: dict[str, str]) -> None:
    env = {k: v for k, v in playloop_env.items() if k != "PLAYLOOP_DB"}
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'pl.db'}"
    missing = playloop("executions", "list", "--db", url, env=env)
    assert missing.returncode == 2
    assert "no playloop database" in missing.stderr
    assert playloop("token", "create", "--role", "viewer", "--db", url, env=env).returncode == 0
    listed = playloop("token", "list", "--db", url, "--json", env=env)
    assert [t["role"] for t in json.loads(listed.stdout)] == ["viewer"]
    assert json.loads(playloop("executions", "list", "--db", url, "--json", env=env).stdout) == []
    counted = playloop(
        "sql", "SELECT count(*) AS n FROM noetl.api_token", "--db", url, "--json", env=env
    )
    assert json.loads(counted.stdout) == [{"n": 1}]
    assert not (tmp_path / "home" / "playloop.db").exists(), "--db, not the home directory"
