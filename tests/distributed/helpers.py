"""Start real worker processes for the distributed tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WORKER = "import sys; from playloop.cli_worker import worker_app; worker_app(sys.argv[1:])"


def start_worker(
    db_url: str,
    home: Path,
    *,
    concurrency: int = 4,
    lease_seconds: float = 3.0,
    pool: str = "default",
) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / "worker.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, "start", "--db", db_url, "--home", str(home),
             "--concurrency", str(concurrency), "--lease-seconds", str(lease_seconds), "--pool", pool,
             "--processes", "2", "--grace", "5"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def fan_out(n: int, sleep: float) -> str:
    arcs = "".join(f"        - {{step: b{i}}}\n" for i in range(n))
    steps = "".join(
        f"  - step: b{i}\n    tool: {{kind: python, code: 'import time; time.sleep({sleep}); result = {i}'}}\n"
        f"    next: {{arcs: [{{step: join}}]}}\n"
        for i in range(n)
    )
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: fan, path: tests/fan}\nworkflow:\n"
        "  - step: start\n    tool: {kind: noop}\n    next:\n      spec: {mode: inclusive}\n      arcs:\n"
        + arcs
        + steps
        + "  - step: join\n    tool: {kind: noop, result: joined}\n"
    )


def start_server(db_url: str, home: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    """``playloop server start --no-auth`` on 127.0.0.1; returns the process and its URL."""
    import re
    import time

    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"server-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "playloop.cli", "server", "start", "--db", db_url, "--home", str(home),
             "--port", str(port), "--no-auth"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log_path.read_text())
        if found:
            return proc, found.group(1)
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)


def chain(name: str, n: int, sleep: float = 0.0) -> str:
    """A chain of n python steps, each adding one to the previous result."""
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        f"metadata: {{name: {name}, path: tests/{name}}}",
        "workflow:",
    ]
    for i in range(n):
        prev = f'"{{{{ s{i - 1} }}}}"' if i else "0"
        code = f"import time; time.sleep({sleep}); result = x + 1" if sleep else "result = x + 1"
        lines.append(f"  - step: s{i}")
        lines.append(f"    tool: {{kind: python, input: {{x: {prev}}}, code: '{code}'}}")
        if i < n - 1:
            lines.append(f"    next: [{{step: s{i + 1}}}]")
    return "\n".join(lines) + "\n"
