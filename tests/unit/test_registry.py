from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from playloop.tools import registry
from playloop.tools.base import Tool


class _Other(Tool):
    kind = "python"


def test_builtin_kinds_register_through_entry_points() -> None:
    assert set(registry.kinds()) >= {
        "python",
        "http",
        "sqlite",
        "duckdb",
        "shell",
        "playbook",
        "workbook",
        "noop",
    }
    assert registry.tool_class("http").kind == "http"


def test_unknown_kind_has_a_hint() -> None:
    with pytest.raises(registry.UnknownToolKind, match="did you mean 'python'"):
        registry.tool_class("pyton")


def test_a_duplicate_kind_is_a_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.entry_points

    def with_duplicate(group: str) -> Any:
        found = list(real(group=group))
        extra = EntryPoint(name="python2", value=f"{__name__}:_Other", group=group)
        return [*found, extra]

    monkeypatch.setattr(registry, "entry_points", with_duplicate)
    registry._tools.cache_clear()
    try:
        with pytest.raises(registry.DuplicateToolKind, match="'python' registered twice"):
            registry.kinds()
    finally:
        registry._tools.cache_clear()
