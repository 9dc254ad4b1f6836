"""A real uvicorn server on 127.0.0.1 (ephemeral port) in a thread, with a token per role.

The database is the backend under test (``PLAYLOOP_TEST_BACKEND``): a SQLite file, or a
PostgreSQL database of the fixture's own on the test server.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.conftest import _admin, _with_database, pg_dsn

from playloop.api.app import create_app
from playloop.api.server import bind, make_server
from playloop.auth.roles import ROLES
from playloop.auth.tokens import create_token
from playloop.runtime import Engine

CHAIN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: chain
  path: tests/api/chain
workload:
  n: 1
workflow:
  - step: first
    tool: {kind: noop, result: {n: 1}}
    next:
      - step: second
  - step: second
    tool: {kind: noop, result: {n: 2}}
"""


class ServerThread:
    """uvicorn serving ``app`` from a thread; ``stop()`` shuts it down and joins it."""

    def __init__(self, app: object) -> None:
        self._sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.server: uvicorn.Server = make_server(app, self._sock, log_level="warning")  # type: ignore[arg-type]
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


@contextmanager
def database(tmp: Path, backend: str) -> Iterator[str]:
    """A database URL for ``backend`` (the ``backend`` fixture), dropped afterwards (PostgreSQL)."""
    if backend != "postgres":
        yield f"sqlite:///{tmp / 'home' / 'playloop.db'}"
        return
    name = f"playloop_api_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name}")
    try:
        yield _with_database(pg_dsn(), name)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Live:
    url: str
    engine: Engine
    home: Path
    db: str
    tokens: dict[str, str] = field(default_factory=dict)
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, role: str | None = "admin", token: str | None = None) -> httpx.Client:
        """An httpx client with the token of ``role`` (None: no token), closed at teardown."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self._clients.append(client)
        return client

    def register(self, content: str = CHAIN) -> dict[str, object]:
        response = self.client("operator").post("/api/catalog/register", json={"content": content})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def start(self, path: str = "tests/api/chain", **body: object) -> int:
        response = self.client("operator").post("/api/execute", json={"path": path, **body})
        assert response.status_code == 202, response.text
        return int(response.json()["execution_id"])

    def finish(self, execution_id: int, timeout: float = 60) -> dict[str, object]:
        """Run a queued execution to its end with a worker (an engine that claims any
        execution's commands) on the same database: the server's engine runs no steps."""
        with Engine(self.home, db=self.db, concurrency=4, processes=1, claim_any=True) as worker:
            worker.serve()
            return worker.wait(execution_id, timeout=timeout)

    def close(self) -> None:
        for client in self._clients:
            client.close()


def _live(tmp: Path, backend: str, *, auth_required: bool) -> Iterator[Live]:
    home = tmp / "home"
    with database(tmp, backend) as db:
        engine = Engine(home, db=db, concurrency=0, processes=1)
        server = ServerThread(create_app(engine, auth_required=auth_required)).start()
        live = Live(url=server.url, engine=engine, home=home, db=db)
        for role in ROLES:
            live.tokens[role] = create_token(engine.store, role, f"test-{role}").token
        try:
            yield live
        finally:
            live.close()
            server.stop()
            engine.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Live]:
    """A server with auth on, shared by a module's tests."""
    yield from _live(tmp_path_factory.mktemp("api"), backend, auth_required=True)


@pytest.fixture
def fresh(tmp_path: Path, backend: str) -> Iterator[Live]:
    """A server of the test's own (for tests that count what is stored)."""
    yield from _live(tmp_path, backend, auth_required=True)


@pytest.fixture(scope="module")
def open_live(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Live]:
    """A server with auth off (local embedded use)."""
    yield from _live(tmp_path_factory.mktemp("api-open"), backend, auth_required=False)
