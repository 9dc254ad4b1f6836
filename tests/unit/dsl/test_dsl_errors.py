"""``Problem`` and ``PlaybookError``: one line per problem, ``file:line:col: step: field: what``."""

from __future__ import annotations

import pytest

from playloop.dsl.errors import PlaybookError, Problem, did_you_mean, format_path
from playloop.dsl.normalize import template_names
from playloop.dsl.render import TemplateError, referenced_names


def test_problem_line_names_step_and_field_when_there_are_some() -> None:
    assert (
        str(Problem("pb.yaml", 3, 7, "load", "retry.attempts", "must be >= 1"))
        == "pb.yaml:3:7: step 'load': field 'retry.attempts': must be >= 1"
    )
    assert str(Problem("pb.yaml", 1, 1, None, "metadata.name", "is required")) == (
        "pb.yaml:1:1: field 'metadata.name': is required"
    )
    assert str(Problem("pb.yaml", 2, 5, "a", None, "boom")) == "pb.yaml:2:5: step 'a': boom"
    assert str(Problem("pb.yaml", 9, 1, None, None, "invalid YAML")) == "pb.yaml:9:1: invalid YAML"


def test_playbook_error_is_a_value_error_with_one_line_per_problem() -> None:
    problems = [Problem("f", 1, 1, None, None, "one"), Problem("f", 2, 3, "s", "x", "two")]
    error = PlaybookError(problems)
    assert isinstance(error, ValueError)
    assert error.problems == problems
    assert str(error) == "f:1:1: one\nf:2:3: step 's': field 'x': two"


def test_helpers() -> None:
    assert format_path(("next", 0, "then", 1, "step")) == "next[0].then[1].step"
    assert format_path(()) == ""
    assert did_you_mean("retyr", ["retry", "loop"]) == " (did you mean 'retry'?)"
    assert did_you_mean("zzz", ["retry", "loop"]) == ""


@pytest.mark.parametrize(
    "source",
    [
        "{{ a.b + c | default(d) }}",
        "{% for x in items %}{{ x }}{% endfor %}",
        "{% set y = 1 %}{{ y + z }}",
        "{{ now() }} {{ range(3) | list }}",
        "{% macro m(p) %}{{ p }}{{ q }}{% endmacro %}",
        "plain text",
    ],
)
def test_template_names_agree_with_render_referenced_names(source: str) -> None:
    assert template_names(source) == referenced_names(source)


def test_template_names_raise_on_syntax_errors() -> None:
    with pytest.raises(TemplateError, match="unexpected '}'"):
        template_names("{{ a }")
