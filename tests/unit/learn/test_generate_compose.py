"""The composer without a catalog: intents, patterns, wiring, field repair, rejection."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from playloop.dsl.load import load_text
from playloop.learn.generate import DraftRejected, LlmConfig, compose_draft, draft_name, generate
from playloop.learn.generate.grounding import Example, Grounding, StepRecord
from playloop.learn.generate.intents import parse
from playloop.learn.generate.llm import extract_yaml, llm_config
from playloop.learn.generate.templates import unknown_references

OFF = LlmConfig.off()


def _steps(text: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load(text)["workflow"])


def test_intents_follow_the_description_order() -> None:
    p = parse("Every night, extract the orders from SQLite, clean them, and load them into DuckDB.")
    assert [(i.kind, i.verb, i.obj) for i in p.intents] == [
        ("query", "extract", "orders"),
        ("transform", "clean", "orders"),
        ("load", "load", "orders"),
    ]
    assert [i.dialect for i in p.intents] == ["sqlite", "sqlite", "duckdb"]
    assert p.schedule == "0 2 * * *"


def test_loops_thresholds_callbacks_and_nouns() -> None:
    p = parse(
        "For each file, parse it; if the quality score is below 80%, ask a reviewer to approve."
    )
    assert p.intents[0].loop_over == "files" and p.threshold == 0.8
    assert "score" not in [i.verb for i in p.intents]  # "quality score is": a noun
    q = parse("Send a message to the ops webhook and wait for the acknowledgement.")
    assert q.intents[0].kind == "notify" and q.intents[0].callback


def test_gate_on_score_routes_to_review_and_rejected() -> None:
    draft = generate(
        "Validate the batch; if the quality score is below 0.9 ask a data steward to approve "
        "before loading it into SQLite.",
        llm=OFF,
    )
    steps = {s["step"]: s for s in _steps(draft.text)}
    gate = steps["validate_batch"]["next"]
    assert gate[0]["when"] == "{{ validate_batch.quality_score < workload.threshold }}"
    review = gate[0]["then"][0]["step"]
    assert steps[review]["tool"]["kind"] == "approval"
    assert steps[review]["tool"]["approvers"] == ["data-stewards"]
    assert gate[1]["else"][0]["step"] == steps[review]["next"][1]["else"][0]["step"]
    assert steps["rejected"]["tool"]["kind"] == "noop"
    assert draft.flow.workload["threshold"] == 0.9
    assert draft.needs == ["a person (approval)"]


def test_unknown_description_still_validates() -> None:
    draft = generate("zzz qqq", llm=OFF)
    assert len(draft.flow.steps) == 1 and draft.notes
    assert draft_name("  ") == "draft" and draft_name("42 Load it") == "load"


def _grounding(step: dict[str, Any], content: str = "") -> Grounding:
    record = StepRecord("lib/source", str(step["step"]), step, finished=9, failed=1)
    example = Example("lib/source", 0.9, "", content, {"rows": 3}, (record,))
    return Grounding([example], retrieval="test")


def test_a_catalog_step_that_worked_is_borrowed_with_its_workload() -> None:
    step = {
        "step": "clean_rows",
        "tool": {"kind": "python", "input": {"n": "{{ workload.rows }}"}, "code": "result = n"},
    }
    draft = compose_draft("Clean the rows.", _grounding(step))
    (only,) = _steps(draft.text)
    assert only["tool"]["code"] == "result = n"
    assert "finished 9 of 10 runs" in only["desc"]
    assert draft.flow.workload["rows"] == 3
    assert draft.borrowed == ["clean_rows from lib/source step clean_rows (finished 9 of 10 runs)"]


def test_a_step_reading_names_the_draft_lacks_is_not_borrowed() -> None:
    step = {
        "step": "clean_rows",
        "tool": {"kind": "python", "input": {"n": "{{ other.x }}"}, "code": "result = n"},
    }
    draft = compose_draft("Clean the rows.", _grounding(step))
    assert not draft.borrowed and "TODO" in _steps(draft.text)[0]["tool"]["code"]


def test_an_invalid_borrowed_field_is_repaired_by_the_pattern() -> None:
    step = {
        "step": "clean_rows",
        "retry": {"attempts": 0},  # the loader rejects it: the repair swaps in the pattern
        "tool": {"kind": "python", "code": "result = 1"},
    }
    draft = compose_draft("Clean the rows.", _grounding(step))
    assert draft.attempts == 2
    assert draft.repairs and "replaced the catalog step by a pattern" in draft.repairs[0]
    assert "retry" not in _steps(draft.text)[0]
    load_text(draft.text)


def test_an_unrepairable_draft_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    import playloop.learn.generate as generate_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        from playloop.learn.generate.compose import Composition

        return Composition({"apiVersion": "noetl.io/v2", "kind": "Playbook", "workflow": []})

    monkeypatch.setattr(generate_module, "compose", broken)
    with pytest.raises(DraftRejected) as info:
        compose_draft("Clean the rows.", Grounding())
    assert info.value.problems and info.value.text


def test_unknown_template_references_are_found() -> None:
    document = {
        "workflow": [
            {
                "step": "a",
                "tool": {"kind": "python", "code": "{{ nope }}", "input": {"x": "{{ b.y }}"}},
            },
            {
                "step": "b",
                "loop": {"in": "{{ workload.xs }}", "iterator": "x"},
                "tool": {"kind": "noop", "result": "{{ x }} {{ gone.z }}"},
            },
        ]
    }
    assert unknown_references(document) == [("b", "gone")]


def test_llm_settings_and_reply_parsing() -> None:
    config = llm_config({"PLAYLOOP_LLM_URL": "http://h:1/v1", "PLAYLOOP_LLM_MODEL": "m"})
    assert config.enabled and config.endpoint == "http://h:1/v1/chat/completions"
    assert llm_config({}).enabled is False
    assert LlmConfig("http://h:1").endpoint == "http://h:1/v1/chat/completions"
    assert extract_yaml("Here:\n```yaml\na: 1\n```\nbye") == "a: 1\n"
    assert extract_yaml("a: 1") == "a: 1\n"
