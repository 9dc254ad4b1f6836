"""Two servers and three workers on one database, 1,000 executions started through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.api_load import run_load

pytestmark = pytest.mark.postgres_only


def test_thousand_executions_through_two_servers_and_three_workers(
    tmp_path: Path, db_url: str
) -> None:
    report = run_load(db_url, tmp_path, executions=1000, servers=2, workers=3)
    print("api load:", report)
    assert report["executions"] == 1000
    assert report["doubled"] == 0  # every step finished exactly once: none advanced twice
    assert report["steps"] == 5000
