"""The learning layer's reads: similar past failures, and playbooks by meaning (viewer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from playloop.api.auth import Viewer
from playloop.api.context import Context
from playloop.api.errors import ApiError, not_found
from playloop.api.models import ID_LIMIT
from playloop.api.routes import documented
from playloop.api.strict import NO_NUL
from playloop.learn.documents import indexed_failure
from playloop.learn.indexer import failure_document
from playloop.learn.linking import is_failure
from playloop.learn.queries import event_by_id
from playloop.learn.similar import search_playbooks, similar_failures
from playloop.learn.vectors import EmbedderMismatch, IndexBusy

router = APIRouter(tags=["learn"])

MAX_QUERY = 4_000
Text = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_QUERY,
        pattern=NO_NUL,
        description="An error message (similar failures) or plain language (search).",
    ),
]
K = Annotated[int, Query(ge=1, le=100, description="At most this many results.")]
MinScore = Annotated[
    float, Query(ge=0.0, le=1.0, description="Only results scoring at least this (0..1).")
]


class ResolutionBrief(BaseModel):
    kind: str | None
    note: str | None
    actor: str | None
    event_id: str
    created_at: str | None


class SimilarFailureOut(BaseModel):
    event_id: str
    execution_id: str
    playbook: str
    step: str | None
    tool: str | None
    error_type: str | None
    error: str
    created_at: str | None
    score: float = Field(description="0..1: the mean of the cosine and the BM25 score.")
    resolved: bool
    resolution: str | None = Field(description="The latest resolution: 'kind: note'.")
    resolutions: list[ResolutionBrief]


class SimilarFailureList(BaseModel):
    items: list[SimilarFailureOut]


class PlaybookMatchOut(BaseModel):
    path: str
    name: str
    version: int | None
    description: str
    steps: list[str]
    tools: list[str]
    score: float


class PlaybookMatchList(BaseModel):
    items: list[PlaybookMatchOut]


def _index(ctx: Any) -> Any:
    try:
        return ctx.engine.vector_index()
    except (EmbedderMismatch, IndexBusy) as exc:
        raise ApiError(503, str(exc), code="index_unavailable") from None


@router.get("/api/learn/similar-failures", responses=documented(404, 409))
def similar(
    ctx: Context,
    _: Viewer,
    q: Text = None,
    event_id: Annotated[
        int | None, Query(ge=0, lt=ID_LIMIT, description="A failure event's id.")
    ] = None,
    k: K = 5,
    min_score: MinScore = 0.0,
    playbook: Annotated[
        str | None,
        Query(min_length=1, max_length=1024, pattern=NO_NUL, description="Only this playbook."),
    ] = None,
) -> SimilarFailureList:
    """Past failures like an error message (``q``) or a failure event (``event_id``), best
    first, each with what resolved it. Give exactly one of ``q`` and ``event_id``; 404 for
    an unknown event, 409 for an event that is not a failure."""
    if (q is None) == (event_id is None):
        raise ApiError(422, "give exactly one of the query parameters 'q' and 'event_id'")
    text = q
    if event_id is not None:
        found = event_by_id(ctx.store, event_id)
        if found is None:
            raise not_found(f"no event {event_id}")
        if not (is_failure(found) or indexed_failure(found)):
            raise ApiError(
                409,
                f"event {event_id} is a {found.event_type} event, not a failure",
                code="not_a_failure",
            )
        text = failure_document(ctx.store, found).text  # type: ignore[arg-type]
    elif q is not None and not q.strip():
        raise ApiError(422, "query parameter 'q' is blank: give an error message")
    assert text is not None
    matches = similar_failures(
        _index(ctx), text, k=k, min_score=min_score, playbook=playbook, exclude_event=event_id
    )
    return SimilarFailureList(
        items=[SimilarFailureOut.model_validate(m.to_dict()) for m in matches]
    )


@router.get("/api/learn/search", responses=documented())
def search(
    ctx: Context,
    _: Viewer,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY,
            pattern=NO_NUL,
            description="What the playbook does, in plain language.",
        ),
    ],
    k: K = 5,
    min_score: MinScore = 0.0,
) -> PlaybookMatchList:
    """Catalog playbooks by meaning (description, step names, tools), best first."""
    if not q.strip():
        raise ApiError(422, "query parameter 'q' is blank: say what the playbook does")
    found = search_playbooks(_index(ctx), q, k=k, min_score=min_score)
    return PlaybookMatchList(items=[PlaybookMatchOut.model_validate(p.to_dict()) for p in found])
