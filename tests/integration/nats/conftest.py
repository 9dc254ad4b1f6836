"""Fixtures for the NATS tests: a real nats-server, an engine whose events go to it.

``$PLAYLOOP_TEST_NATS_URL`` names a running server to reuse (its playloop stream is deleted
before each test); otherwise each test starts its own server on a free port. A missing
nats-server binary is an error, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    reuse = os.environ.get("PLAYLOOP_TEST_NATS_URL")
    if reuse:
        delete_stream(reuse)
        yield reuse
        return
    with NatsServer(tmp_path / "nats-store") as server:
        yield server.url
