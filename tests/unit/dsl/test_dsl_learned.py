"""``retry: auto``, policy ``mode: learned`` and ``timeout: auto``: forms and their errors."""

from __future__ import annotations

import pytest

from playloop.dsl.errors import PlaybookError
from playloop.dsl.flow import AutoTimeout, RetryPolicy
from playloop.dsl.load import load_text
from playloop.dsl.schema import json_schema

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t}\nworkflow:\n"
STEP = "  - step: a\n    tool: {kind: noop, result: 1}\n"


def load(extra: str) -> object:
    return load_text(HEAD + STEP + extra, "p.yaml").steps["a"]


def problem(extra: str) -> str:
    with pytest.raises(PlaybookError) as caught:
        load(extra)
    return str(caught.value)


def test_retry_auto_forms() -> None:
    step = load("    retry: auto\n")
    assert step.retry == RetryPolicy(  # type: ignore[attr-defined]
        attempts=5, delay=1.0, backoff="exponential", max_delay=30.0, auto=True
    )
    step = load("    retry: {auto: true, max_attempts: 3, delay: 50ms, max_delay: 2s}\n")
    assert step.retry == RetryPolicy(  # type: ignore[attr-defined]
        attempts=3, delay=0.05, backoff="exponential", max_delay=2.0, auto=True
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "    retry: automatic\n",
            "p.yaml:7:12: step 'a': field 'retry': must be a mapping or 'auto'",
        ),
        (
            "    retry: {auto: true, attempts: 3}\n",
            "field 'retry': 'attempts' does not combine with 'auto: true' (bound it with 'max_attempts')",
        ),
        ("    retry: {auto: true, on: [x]}\n", "'on' does not combine with 'auto: true'"),
        ("    retry: {max_attempts: 3}\n", "'max_attempts' goes with 'auto: true'"),
        (
            "    retry: {auto: false}\n",
            "needs 'attempts' (or 'auto: true', or write 'retry: auto')",
        ),
        (
            "    retry: {auto: true, max_attempts: 0}\n",
            "field 'retry.max_attempts': Input should be greater than or equal to 1",
        ),
        (
            "    timeout: {auto: false}\n",
            "p.yaml:7:14: step 'a': field 'timeout': a timeout mapping needs 'auto: true'",
        ),
        (
            "    timeout: {auto: true, min: 1m, max: 1s}\n",
            "field 'timeout': max is shorter than min",
        ),
        ("    timeout: {auto: true, low: 1s}\n", "unknown key 'low' in an auto timeout"),
    ],
)
def test_bad_auto_forms_name_file_line_and_field(extra: str, message: str) -> None:
    assert message in problem(extra)


def test_learned_rule_only_retries() -> None:
    with pytest.raises(PlaybookError) as caught:
        load_text(
            HEAD + "  - step: a\n    tool:\n      kind: noop\n      spec:\n        policy:\n"
            "          rules:\n            - then: {do: fail, mode: learned}\n",
            "p.yaml",
        )
    assert "'mode: learned' is only for 'do: retry'" in str(caught.value)


def test_learned_rule_and_timeout_auto() -> None:
    flow = load_text(
        HEAD
        + "  - step: a\n"
        + "    tool:\n      kind: noop\n      spec:\n        timeout: auto\n"
        + "        policy:\n          rules:\n"
        + "            - then: {do: retry, mode: learned, attempts: 4}\n",
        "p.yaml",
    )
    step = flow.steps["a"]
    assert step.rules[0].mode == "learned" and step.rules[0].attempts == 4
    assert step.timeout is None and step.timeout_auto == AutoTimeout(min=1.0, max=600.0)


def test_schema_knows_the_auto_forms() -> None:
    schema = json_schema()
    text = str(schema)
    assert "'const': 'auto'" in text and "max_attempts" in text and "'learned'" in text
