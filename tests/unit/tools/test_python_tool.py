"""The ``python`` tool: config + input + context -> the pool, prints routed, errors typed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from playloop.tools.base import ToolContext, ToolError, ToolTimeout
from playloop.tools.python import PythonConfig, PythonTool
from playloop.tools.registry import tool
from playloop.worker.processes import ProcessPool


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPool]:
    with ProcessPool(2) as p:
        yield p


def _ctx(pool: ProcessPool | None, **kw: object) -> ToolContext:
    return ToolContext(execution_id=1, step="s", iteration=None, attempt=1, processes=pool, **kw)  # type: ignore[arg-type]


def test_registered_under_its_kind() -> None:
    assert isinstance(tool("python"), PythonTool)
    assert PythonTool.raw_fields == frozenset({"code"})


def test_runs_code_with_input_and_libs(pool: ProcessPool) -> None:
    config = PythonConfig.model_validate(
        {
            "code": "result = {'root': m.sqrt(x), 'doubled': [v * 2 for v in items]}",
            "libs": {"m": "math"},
        }
    )
    out = PythonTool().run(config, {"x": 9, "items": [1, 2]}, _ctx(pool))
    assert out == {"root": 3.0, "doubled": [2, 4]}


def test_seed_example(pool: ProcessPool) -> None:
    config = PythonConfig(code='result = {"quality_score": 0.85, "anomalies": 12}\n')
    assert PythonTool().run(config, {}, _ctx(pool)) == {"quality_score": 0.85, "anomalies": 12}


def test_main_with_input(pool: ProcessPool) -> None:
    config = PythonConfig(code="def main(a, b):\n    return a - b\n")
    assert PythonTool().run(config, {"a": 5, "b": 3}, _ctx(pool)) == 2


def test_prints_go_to_on_output(pool: ProcessPool) -> None:
    seen: list[str] = []
    config = PythonConfig(code="print('progress 50%')\nresult = 1")
    assert PythonTool().run(config, {}, _ctx(pool, on_output=seen.append)) == 1
    assert seen == ["progress 50%\n"]


def test_prints_are_logged_without_on_output(
    pool: ProcessPool, caplog: pytest.LogCaptureFixture
) -> None:
    config = PythonConfig(code="print('hello log')")
    with caplog.at_level(logging.INFO, logger="playloop.tools.python"):
        assert PythonTool().run(config, {}, _ctx(pool)) is None
    assert "hello log" in caplog.text


def test_user_error_is_typed(pool: ProcessPool) -> None:
    config = PythonConfig(code="raise KeyError('missing')")
    with pytest.raises(ToolError) as info:
        PythonTool().run(config, {}, _ctx(pool))
    assert info.value.error_type == "KeyError"


def test_timeout_from_context(pool: ProcessPool) -> None:
    config = PythonConfig(code="import time\ntime.sleep(10)")
    with pytest.raises(ToolTimeout):
        PythonTool().run(config, {}, _ctx(pool, timeout=0.3))
    assert PythonTool().run(PythonConfig(code="result = 'after'"), {}, _ctx(pool)) == "after"


def test_without_a_pool_is_a_clear_error() -> None:
    with pytest.raises(ToolError, match="process pool"):
        PythonTool().run(PythonConfig(code="result = 1"), {}, _ctx(None))
