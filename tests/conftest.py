from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from playloop.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(tmp_path / "home", concurrency=16, processes=2) as eng:
        yield eng


@pytest.fixture
def write_playbook(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a playbook text to a file under tmp_path and return its path."""

    def write(text: str, name: str = "playbook.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
