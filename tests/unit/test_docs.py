"""Docs stay true: the CLI reference matches --help, the public API is pinned."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import playloop

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_generated_from_help() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.render(), "run scripts/gen_cli_docs.py"


def test_public_api_is_pinned() -> None:
    assert sorted(playloop.__all__) == [
        "Engine",
        "Flow",
        "PlaybookError",
        "__version__",
        "load",
        "run",
    ]


def test_every_tool_kind_is_documented() -> None:
    from playloop.tools.registry import kinds

    text = (ROOT / "docs" / "dsl.md").read_text()
    for kind in kinds():
        assert f"### `{kind}`" in text, kind


def test_every_event_type_is_documented() -> None:
    from playloop.engine.events import PAYLOADS

    text = (ROOT / "docs" / "events.md").read_text()
    for event_type in PAYLOADS:
        assert f"`{event_type}`" in text, event_type
