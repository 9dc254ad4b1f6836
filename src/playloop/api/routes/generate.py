"""Draft a playbook from a description (role operator): returned, never registered or run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from playloop.api.auth import Operator
from playloop.api.context import Context
from playloop.api.errors import ApiError
from playloop.api.routes import documented_body
from playloop.learn.generate import MAX_DESCRIPTION, DraftRejected, LlmConfig, LlmError, generate
from playloop.learn.generate.retrieval import open_retriever

router = APIRouter(prefix="/api/learn", tags=["learn"])


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(
        min_length=1,
        max_length=MAX_DESCRIPTION,
        pattern=r"^[^\x00]*[^\x00\s\x1c-\x1f][^\x00]*$",  # not blank; no NUL characters
        description="What the playbook should do, in plain words.",
    )
    k: int = Field(default=5, ge=1, le=20, description="How many similar playbooks to use.")
    llm: bool = Field(
        default=True, description="Let the LLM of $PLAYLOOP_LLM_URL write it (when one is set)."
    )


class GroundingOut(BaseModel):
    retrieval: str = Field(description="vectors, lexical (word overlap) or none.")
    playbooks: list[dict[str, Any]] = Field(description="Similar catalog playbooks: {path, score}.")


class DraftOut(BaseModel):
    description: str
    path: str
    name: str
    steps: list[str]
    content: str = Field(description="The draft's YAML: validated, not registered.")
    source: str = Field(description="composer or llm.")
    attempts: int
    repairs: list[str]
    grounding: GroundingOut
    borrowed: list[str] = Field(
        description="Catalog steps taken into the draft, with their record."
    )
    needs: list[str] = Field(description="What the draft needs to run: http, postgres, a person...")
    notes: list[str]
    elapsed_ms: float
    how_to_run: str


@router.post("/generate", responses=documented_body(502))
def generate_playbook(body: GenerateRequest, ctx: Context, _: Operator) -> DraftOut:
    """Draft a playbook grounded in similar catalog playbooks and the steps that worked
    (an LLM writes it when ``$PLAYLOOP_LLM_URL`` is set on the server). The draft is
    validated by the DSL; one that cannot be repaired is a 422 with its ``problems``. It is
    only returned: register it with ``POST /api/catalog/register`` once a person has read it."""
    try:
        with open_retriever(ctx.engine.home, ctx.store, keep=True) as retriever:
            draft = generate(
                body.description,
                store=ctx.store,
                retriever=retriever,
                llm=None if body.llm else LlmConfig.off(),
                k=body.k,
            )
    except DraftRejected as exc:
        raise ApiError(
            422, str(exc).split("\n", 1)[0], code="draft_rejected", problems=exc.problems
        ) from None
    except LlmError as exc:
        raise ApiError(502, str(exc), code="llm_unavailable") from None
    except ValueError as exc:
        raise ApiError(422, f"invalid request: body.description: {exc}") from None
    return DraftOut.model_validate(
        {**draft.to_dict(), "how_to_run": "playloop run FILE (after review)"}
    )
