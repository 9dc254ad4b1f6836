"""PostgreSQL restarted (pg_ctl restart) mid-run: workers reconnect, the execution completes.

The server restarted is one of the test's own (initdb in a temp dir, about a second), not
the shared test server: the other tests, run in parallel, and other sessions keep theirs.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from playloop.runtime import Engine
from playloop.store.postgres import PostgresStore
from tests.distributed.helpers import start_worker

pytestmark = pytest.mark.postgres_only


def _chain(n: int, sleep: float) -> str:
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        "metadata: {name: chain, path: tests/pgrestart}",
        "workflow:",
    ]
    for i in range(n):
        prev = f'"{{{{ s{i - 1} }}}}"' if i else "0"
        lines.append(f"  - step: s{i}")
        lines.append(
            f"    tool: {{kind: python, input: {{x: {prev}}}, code: 'import time; time.sleep({sleep}); result = x + 1'}}"
        )
        if i < n - 1:
            lines.append(f"    next: [{{step: s{i + 1}}}]")
    return "\n".join(lines) + "\n"


def _bindir() -> Path:
    """PostgreSQL's binaries: those of the shared test server, else this machine's."""
    candidates = [os.environ.get("PLAYLOOP_TEST_PG_BINDIR", "")]
    if shutil.which("pg_config"):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(done.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError("no PostgreSQL binaries: run `scripts/services start` (CI does)")


@dataclass
class Cluster:
    """A PostgreSQL server of the test's own: restarting it disturbs no other test (nor
    another session that shares the test server)."""

    bindir: Path
    data: Path
    port: int
    user: str | None  # PostgreSQL refuses to run as root: then the cluster is `postgres`'s

    @property
    def url(self) -> str:
        return f"postgresql://playloop:playloop@127.0.0.1:{self.port}/playloop"

    def run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        # a started server must not inherit our pipes: its log goes to a file
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pg_ctl(self, *args: str) -> None:
        log = self.data.parent / "pg.log"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "60", *args)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql.encode(), params).fetchall()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="playloop-pg-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = Cluster(_bindir(), base / "data", port, user)
    (base / "pw").write_text("playloop\n")
    if user:
        for path in (base, base / "pw"):
            shutil.chown(path, user)
    try:
        cluster.run("initdb", "-D", str(cluster.data), "-U", "playloop", f"--pwfile={base / 'pw'}",
                    "-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "-N")  # fmt: skip
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{cluster.data}'\n"
            )
        cluster.pg_ctl("start")
        try:
            admin = cluster.url.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE playloop")
            PostgresStore(cluster.url).close()  # the schema, as `db init` makes it
            yield cluster
        finally:
            cluster.pg_ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_restart_mid_run(tmp_path: Path, cluster: Cluster) -> None:
    db_url, db_query = cluster.url, cluster.query
    playbook = tmp_path / "chain.yaml"
    playbook.write_text(_chain(30, 0.1))
    workers = [start_worker(db_url, tmp_path / f"w{i}") for i in range(2)]
    try:
        with Engine(tmp_path / "client", db=db_url, concurrency=0) as client:
            execution_id = client.start(playbook)
            deadline = time.time() + 60
            while (
                db_query("SELECT count(*) FROM noetl.event WHERE event_type = 'step.finished'")[0][
                    0
                ]
                < 8
            ):
                assert time.time() < deadline
                time.sleep(0.05)
            cluster.pg_ctl("restart", "-m", "fast")
            summary = client.wait(execution_id, timeout=120)
        assert summary["status"] == "completed"
        assert summary["result"] == 30
        rows = db_query(
            "SELECT seq, event_type, step_name FROM noetl.event WHERE execution_id = %s ORDER BY seq",
            execution_id,
        )
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert sorted(r[2] for r in rows if r[1] == "step.finished") == sorted(
            f"s{i}" for i in range(30)
        )
        assert all(w.poll() is None for w in workers), "a worker died with the database restart"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
