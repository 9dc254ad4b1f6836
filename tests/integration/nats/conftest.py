"""Fixtures for the NATS tests: a real nats-server, an engine whose events go to it.

``$PLAYLOOP_TEST_NATS_URL`` names a running server to reuse (its playloop stream is deleted
before each test, so under pytest-xdist the tests that reuse it take turns: a lock file
shared by the session's workers); otherwise each test starts its own server on a free port.
A missing nats-server binary is an error, never a skip.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from nats_helpers import NatsServer, delete_stream


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own (for tests that stop and restart it)."""
    server = NatsServer(tmp_path / "nats-store").start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def one_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under pytest-xdist: one test of the session at a time (the workers' temp dirs share
    a parent); in a plain run: nothing to wait for."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    lock = tmp_path_factory.getbasetemp().parent / "nats.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture
def nats_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reuse = os.environ.get("PLAYLOOP_TEST_NATS_URL")
    if reuse:
        with one_at_a_time(tmp_path_factory):
            delete_stream(reuse)
            yield reuse
        return
    with NatsServer(tmp_path / "nats-store") as server:
        yield server.url
