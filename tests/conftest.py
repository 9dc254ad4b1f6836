"""Fixtures shared by every test; ``PLAYLOOP_TEST_BACKEND=postgres`` runs them on PostgreSQL.

On PostgreSQL each test gets a fresh database cloned from a migrated template
(``CREATE DATABASE ... TEMPLATE``), on the server named by ``PLAYLOOP_TEST_PG_DSN``
(``scripts/services start`` runs one). A test a dialect lacks carries the marker
``sqlite_only`` or ``postgres_only`` and is skipped, and counted, on the other backend.
With the postgres backend chosen and no server, the tests fail: they never skip.

A test reaches the backend under test only through the ``backend`` fixture (``db_url``,
``engine``, ``playloop_env``, ``db_query`` and the API servers request it). The postgres
pass runs just those tests and the ``postgres_only`` ones; the rest (the DSL, rendering,
the pure core, embedding, a test with its own SQLite file...) run once, in the sqlite pass,
and the postgres pass prints how many it left out.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from playloop.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BACKEND = os.environ.get("PLAYLOOP_TEST_BACKEND", "sqlite")
#: one per test session: sessions from two checkouts may share a server
TEMPLATE = f"playloop_test_template_{os.getpid()}"
#: how many backend-independent tests the postgres pass left out
_LEFT_OUT = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND not in ("sqlite", "postgres"):
        raise pytest.UsageError(
            f"PLAYLOOP_TEST_BACKEND must be sqlite or postgres, not {BACKEND!r}"
        )
    config.addinivalue_line("markers", "sqlite_only: a test of a SQLite-only feature")
    config.addinivalue_line("markers", "postgres_only: a test of a PostgreSQL-only feature")


def uses_backend(item: pytest.Item) -> bool:
    """Whether the test depends on the backend under test (see the module docstring)."""
    return "backend" in getattr(item, "fixturenames", ()) or bool(
        item.get_closest_marker("postgres_only") or item.get_closest_marker("sqlite_only")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    other = "postgres_only" if BACKEND == "sqlite" else "sqlite_only"
    for item in items:
        if item.get_closest_marker(other):
            item.add_marker(pytest.mark.skip(reason=f"{other}: not on the {BACKEND} backend"))
    if BACKEND == "postgres":
        independent = [item for item in items if not uses_backend(item)]
        if independent:
            config.hook.pytest_deselected(items=independent)
            items[:] = [item for item in items if uses_backend(item)]
        config.stash[_LEFT_OUT] = len(independent)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left_out = session.config.stash.get(_LEFT_OUT, 0)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: tell the controller
        workeroutput["playloop_left_out"] = left_out
    # `scripts/test tests/unit/dsl`: no test there uses the backend, the postgres pass has
    # nothing to run, and that is a success (pytest would exit 5, "no tests collected")
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and left_out:
        session.exitstatus = pytest.ExitCode.OK


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist's controller: a worker ended; every worker collected the same tests."""
    left_out = getattr(node, "workeroutput", {}).get("playloop_left_out")
    if left_out is not None:
        node.config.stash[_LEFT_OUT] = left_out


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if BACKEND == "postgres" and _LEFT_OUT in config.stash:
        terminalreporter.write_line(
            f"playloop: {config.stash[_LEFT_OUT]} backend-independent tests deselected "
            "(they run in the sqlite pass)"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"playloop backend: {BACKEND}"


def pg_dsn() -> str:
    dsn = os.environ.get("PLAYLOOP_TEST_PG_DSN")
    if not dsn:
        raise RuntimeError(
            "PLAYLOOP_TEST_PG_DSN is not set: run `scripts/services start` (CI does)"
        )
    return dsn


def _with_database(dsn: str, name: str) -> str:
    """The same server URL with another database name."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, made once per session."""
    from playloop.store.postgres import PostgresStore

    _admin(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    _admin(f"CREATE DATABASE {TEMPLATE}")
    PostgresStore(_with_database(pg_dsn(), TEMPLATE)).close()
    yield TEMPLATE
    _admin(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")


@pytest.fixture
def fresh_pg_url(pg_template: str) -> Iterator[str]:
    name = f"playloop_t_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield _with_database(pg_dsn(), name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def backend() -> str:
    """The backend under test, ``sqlite`` or ``postgres``: the one way a test reaches it, so
    that the postgres pass knows which tests to run (see the module docstring)."""
    return BACKEND


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    """The database URL tests and subprocesses use, for the backend under test."""
    if backend == "postgres":
        return str(request.getfixturevalue("fresh_pg_url"))
    return f"sqlite:///{tmp_path / 'home' / 'playloop.db'}"


@pytest.fixture
def engine(tmp_path: Path, db_url: str) -> Iterator[Engine]:
    with Engine(tmp_path / "home", db=db_url, concurrency=16, processes=2) as eng:
        yield eng


@pytest.fixture
def playloop_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    """Environment for ``playloop`` subprocesses: the home dir and the backend's database."""
    return {
        **os.environ,
        "PLAYLOOP_HOME": str(tmp_path / "home"),
        "PLAYLOOP_DB": db_url,
        "COLUMNS": "200",
    }


@pytest.fixture
def db_query(db_url: str, backend: str) -> Callable[..., list[tuple[Any, ...]]]:
    """Run read-only SQL (``?`` placeholders) against the backend's database."""
    from playloop.store.open import open_store

    def run(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if backend == "postgres":
            sql = sql.replace("?", "%s")
        store = open_store(db_url)
        try:
            return store.query(sql, params)[1]
        finally:
            store.close()

    return run


@pytest.fixture
def write_playbook(tmp_path: Path) -> Callable[..., Path]:
    """Write a playbook text to a file under tmp_path and return its path."""

    def write(text: str, name: str = "playbook.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
