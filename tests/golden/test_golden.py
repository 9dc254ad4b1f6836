"""Replay every recorded history through fold + decide and compare with what was recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playloop.engine import events as event_module
from tests.golden.replay import GOLDEN, SCENARIOS, replay

FILES = sorted(GOLDEN.glob("*.json"))


def test_every_scenario_has_a_golden_file() -> None:
    assert {p.stem for p in FILES} == set(SCENARIOS)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_history_replays(path: Path) -> None:
    golden = json.loads(path.read_text())
    if "expect_error" in golden:
        with pytest.raises(getattr(event_module, golden["expect_error"])):
            replay(golden)
        return
    assert replay(golden) == golden["expect"], golden["description"]
