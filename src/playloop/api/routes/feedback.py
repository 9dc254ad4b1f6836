"""Feedback on an execution: a downstream outcome, at any time after the run (role operator)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from playloop.api.auth import Operator
from playloop.api.context import Context
from playloop.api.errors import ApiError, not_found
from playloop.api.models import EventOut
from playloop.api.routes import documented_body
from playloop.api.routes.events import event_out
from playloop.api.routes.executions import ExecutionId
from playloop.engine.orchestrator import UnknownExecution
from playloop.learn.feedback import Feedback, UnknownStep, record_feedback

router = APIRouter(prefix="/api/executions", tags=["feedback"])


class FeedbackRequest(Feedback):
    step: str | None = Field(
        default=None, min_length=1, max_length=1024, description="The step it is about."
    )


@router.post("/{execution_id}/feedback", status_code=201, responses=documented_body(404))
def give_feedback(
    execution_id: ExecutionId, body: FeedbackRequest, ctx: Context, who: Operator
) -> EventOut:
    """Record a downstream outcome (label, score, metrics, comment) as a
    ``feedback.received`` event in the execution's log; returns the event."""
    feedback = Feedback.model_validate(body.model_dump(exclude={"step"}))
    try:
        event = record_feedback(ctx.engine, execution_id, feedback, step=body.step, actor=who.name)
    except UnknownExecution:
        raise not_found(f"no execution {execution_id}") from None
    except UnknownStep as exc:
        raise ApiError(422, str(exc), code="unknown_step") from None
    return event_out(event)
