"""Downstream outcomes fed back to a run: a ``feedback.received`` event in its log.

Feedback arrives at any time, days after the run ended (an A/B test's result, a
data-quality check downstream), from the CLI or the HTTP API. It is checked whole before
anything is appended, so a bad request leaves no event behind.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    field_validator,
)

from playloop.engine.events import Event
from playloop.engine.orchestrator import UnknownExecution

if TYPE_CHECKING:
    from playloop.runtime import Engine

Label = Literal["good", "bad"]
#: text without NUL characters (PostgreSQL stores none in text or JSONB)
NO_NUL = r"^[^\x00]*$"
MetricName = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
MetricText = Annotated[StrictStr, Field(max_length=2000, pattern=NO_NUL)]
MetricValue = StrictInt | StrictFloat | StrictBool | MetricText
MAX_METRICS = 100
#: said by hand: pydantic describes a key pattern as ``patternProperties``, which lets
#: other keys through; ``propertyNames`` is what the validation does
_METRICS_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_METRICS,
    "propertyNames": {"minLength": 1, "maxLength": 200, "pattern": NO_NUL},
    "additionalProperties": {
        "anyOf": [
            {"type": "integer"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "string", "maxLength": 2000, "pattern": NO_NUL},
        ]
    },
}
Metrics = Annotated[dict[MetricName, MetricValue], WithJsonSchema(_METRICS_SCHEMA)]


class UnknownStep(ValueError):
    """The execution has no step of this name."""


class Feedback(BaseModel):
    """What a feedback event says: ``meta`` = {label, score, metrics, comment}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Label = Field(description="good or bad: the outcome downstream.")
    score: StrictInt | StrictFloat | None = Field(
        default=None, description="A number, e.g. a conversion rate or a quality score."
    )
    metrics: Metrics = Field(
        default_factory=dict,
        max_length=MAX_METRICS,
        description="Named measurements: numbers, booleans or short strings.",
    )
    comment: str | None = Field(default=None, max_length=10_000, pattern=NO_NUL)

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("the score must be a finite number")
        return value

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, metric in value.items():
            if isinstance(metric, float) and not math.isfinite(metric):
                raise ValueError(f"metric '{name}' must be a finite number")
        return value

    def meta(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "metrics": dict(self.metrics),
            "comment": self.comment,
        }


def record_feedback(
    engine: Engine,
    execution_id: int,
    feedback: Feedback,
    *,
    step: str | None = None,
    actor: str,
) -> Event:
    """Append ``feedback.received`` to the execution (any status); ``step`` must be one of
    its steps. Raises ``UnknownExecution`` or ``UnknownStep`` before appending anything."""
    if step is not None:
        steps = engine.state(execution_id).steps  # raises UnknownExecution
        if step not in steps:
            known = ", ".join(sorted(steps)) or "none"
            raise UnknownStep(f"execution {execution_id} has no step '{step}' (its steps: {known})")
    elif engine.store.get_execution(execution_id) is None:
        raise UnknownExecution(f"no execution {execution_id}")
    return engine.record(
        execution_id, "feedback.received", actor=actor, step_name=step, meta=feedback.meta()
    )
