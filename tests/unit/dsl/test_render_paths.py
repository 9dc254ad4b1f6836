"""Templates that are a dotted path are looked up directly; the answers must be Jinja's."""

from __future__ import annotations

from typing import Any

import pytest

from playloop.dsl.render import TemplateError, render

CONTEXT: dict[str, Any] = {
    "workload": {"items": [1, 2], "threshold": 0.9, "nested": {"deep": {"x": None}}},
    "step1": {"quality_score": 0.85, "rows": [{"a": 1}]},
    "name": "ada",
    "count": 3,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ workload.threshold }}", 0.9),
        ("{{ workload.items }}", [1, 2]),  # the key, not dict.items
        ("{{workload.nested.deep.x}}", None),
        ("{{ step1.rows }}", [{"a": 1}]),
        ("{{ name }}", "ada"),
        ("{{ count }}", 3),
        ("{{ true }}", True),  # a literal, not a variable
        ("{{ none }}", None),
        ("{{ name.upper() }}", "ADA"),  # not a path: Jinja
        ("{{ step1.quality_score < workload.threshold }}", True),
        ("{{ step1.rows.0.a }}", 1),  # an index Jinja understands: falls back to it
        ("x {{ name }}", "x ada"),  # not a single expression: a string
    ],
)
def test_paths_render_as_jinja_does(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    "template",
    ["{{ workload.missing }}", "{{ nobody }}", "{{ step1.quality_score.more }}"],
)
def test_a_path_that_is_not_there_is_jinja_s_undefined_error(template: str) -> None:
    with pytest.raises(TemplateError, match=r"undefined|has no attribute"):
        render(template, CONTEXT, step="s")


def test_private_attributes_stay_sandboxed() -> None:
    with pytest.raises(TemplateError):
        render("{{ name.__class__ }}", CONTEXT)
    assert render("{{ d.__class__ }}", {"d": {"__class__": "data"}}) == "data"
