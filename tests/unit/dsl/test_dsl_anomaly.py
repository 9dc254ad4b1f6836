"""``anomaly:`` and ``on_anomaly:`` on a step: what loads, and every error a user can act on."""

from __future__ import annotations

from textwrap import dedent

import pytest

from playloop.dsl.errors import PlaybookError
from playloop.dsl.flow import AnomalyRoute, AnomalySpec, Flow
from playloop.dsl.load import load_text
from playloop.dsl.schema import json_schema

HEADER = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t}\n"


def load(body: str) -> Flow:
    """Load ``body`` after the three header lines: its first line is line 4."""
    return load_text(HEADER + dedent(body).lstrip("\n"), filename="pb.yaml")


def problems(body: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        load(body)
    return str(caught.value).splitlines()


def test_defaults_tuning_and_route_load_into_the_flow() -> None:
    flow = load(
        """
        workflow:
          - step: check
            tool: {kind: python, code: "result = {'quality_score': 0.9}"}
            anomaly: {threshold: 5, min_samples: 30, fields: [quality_score]}
            on_anomaly: {step: review, kinds: [result_drift, duration]}
            next:
              - when: "{{ anomaly and anomaly.kind == 'duration' }}"
                then: [slow]
              - else: [load]
          - step: review
          - step: slow
          - step: load
        """
    )
    check = flow.steps["check"]
    assert check.anomaly == AnomalySpec(True, 5.0, 30, ("quality_score",))
    assert check.on_anomaly == AnomalyRoute("review", ("result_drift", "duration"), line=8)
    assert flow.steps["load"].anomaly == AnomalySpec() and flow.steps["load"].on_anomaly is None
    # the on_anomaly target is a successor: it counts for joins and reachability
    assert flow.predecessors["review"] == ("check",)
    assert "review" in flow.reaches["check"]


def test_opt_out_loads() -> None:
    flow = load(
        """
        workflow:
          - step: quiet
            anomaly: {enabled: false}
        """
    )
    assert flow.steps["quiet"].anomaly.enabled is False


def test_unknown_on_anomaly_target_is_named_with_a_hint() -> None:
    assert problems(
        """
        workflow:
          - step: check
            on_anomaly: {step: reveiw}
          - step: review
        """
    ) == [
        "pb.yaml:6:24: step 'check': field 'on_anomaly.step': unknown step 'reveiw' (did you mean 'review'?)"
    ]


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (
            "loop: {in: [1, 2]}",
            "a loop step is not judged for anomalies (its items are)",
        ),
        (
            "tool: {kind: approval, prompt: ok?}",
            "an approval step is not judged for anomalies (a person decides it)",
        ),
        (
            "anomaly: {enabled: false}",
            "anomaly detection is off for this step (anomaly.enabled: false)",
        ),
    ],
)
def test_on_anomaly_that_can_never_fire_is_an_error(step: str, why: str) -> None:
    found = problems(
        f"""
        workflow:
          - step: check
            {step}
            on_anomaly: {{step: review}}
          - step: review
        """
    )
    assert found == [
        f"pb.yaml:7:5: step 'check': field 'on_anomaly': on_anomaly can never fire: {why}"
    ]


def test_shapes_are_checked_with_hints() -> None:
    found = problems(
        """
        workflow:
          - step: check
            anomaly: {treshold: 3, min_samples: 1}
            on_anomaly: {step: review, kinds: [slow]}
          - step: review
        """
    )
    assert found == [
        "pb.yaml:6:15: step 'check': field 'anomaly.treshold': unknown key 'treshold' (did you mean 'threshold'?)",
        "pb.yaml:6:41: step 'check': field 'anomaly.min_samples': Input should be greater than or equal to 2 (got 1)",
        "pb.yaml:7:40: step 'check': field 'on_anomaly.kinds[0]': Input should be 'duration', 'failure_rate' or 'result_drift' (got 'slow')",
    ]


def test_anomaly_is_a_name_of_next_templates_only() -> None:
    found = problems(
        """
        workflow:
          - step: check
            args: {a: "{{ anomaly }}"}
            next:
              - when: "{{ anomaly and anomaly.score > 10 }}"
                then: [review]
          - step: review
            tool: {kind: noop, result: "{{ anomaly }}"}
        """
    )
    assert found == [
        "pb.yaml:6:15: step 'check': field 'args.a': template refers to unknown name 'anomaly'",
        "pb.yaml:11:32: step 'review': field 'tool.result': template refers to unknown name 'anomaly'",
    ]


def test_a_step_may_not_be_named_anomaly() -> None:
    assert problems(
        """
        workflow:
          - step: anomaly
        """
    ) == [
        "pb.yaml:5:11: step 'anomaly': field 'step': step name 'anomaly' is reserved for templates"
    ]


def test_the_json_schema_knows_both_keys() -> None:
    schema = json_schema()
    step = schema["$defs"]["Step"]["properties"]
    assert {"anomaly", "on_anomaly"} <= set(step)
    kinds = schema["$defs"]["OnAnomaly"]["properties"]["kinds"]["anyOf"][0]["items"]["enum"]
    assert kinds == ["duration", "failure_rate", "result_drift"]
    assert schema["$defs"]["AnomalyOptions"]["additionalProperties"] is False
