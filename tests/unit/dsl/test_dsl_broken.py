"""Every broken playbook in tests/fixtures/broken fails to load with the problem it declares.

Each fixture starts with three comments: ``# expect: <part of the message>``,
``# at: <line>:<col>`` and ``# field: <field path, or - for none>``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from playloop.dsl.errors import PlaybookError
from playloop.dsl.load import load_file

BROKEN = Path(__file__).parents[2] / "fixtures" / "broken"
FIXTURES = sorted(BROKEN.glob("*.yaml"))


def _header(path: Path) -> tuple[str, int, int, str | None]:
    lines = path.read_text(encoding="utf-8").splitlines()
    expect = lines[0].removeprefix("# expect: ")
    line, col = lines[1].removeprefix("# at: ").split(":")
    field = lines[2].removeprefix("# field: ")
    assert lines[0].startswith("# expect: ") and lines[1].startswith("# at: "), path.name
    return expect, int(line), int(col), None if field == "-" else field


def test_there_are_at_least_twenty_broken_playbooks() -> None:
    assert len(FIXTURES) >= 20


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_broken_playbook_is_reported_where_it_is_wrong(path: Path) -> None:
    expect, line, col, field = _header(path)
    with pytest.raises(PlaybookError) as caught:
        load_file(path)
    text = str(caught.value)
    assert f"{path}:{line}:{col}: " in text, text
    assert expect in text, text
    matching = [p for p in caught.value.problems if expect in p.message]
    assert matching, text
    problem = matching[0]
    assert (problem.line, problem.col, problem.field) == (line, col, field), text
    if field is not None:
        assert f"field '{field}': " in str(problem)
    assert "Traceback" not in text
