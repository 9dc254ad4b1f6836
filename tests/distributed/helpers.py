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
