"""What the event log teaches: statistics and suggestions (viewer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from playloop.api.auth import Viewer
from playloop.api.context import Context
from playloop.api.errors import not_found
from playloop.api.routes import documented
from playloop.api.strict import NO_NUL
from playloop.dsl.errors import PlaybookError

router = APIRouter(tags=["learn"])

PlaybookPath = Annotated[
    str, Query(min_length=1, max_length=1024, pattern=NO_NUL, description="A playbook path.")
]


@router.get("/api/learn/stats", responses=documented())
def learn_stats(
    ctx: Context,
    _: Viewer,
    playbook: Annotated[
        str | None,
        Query(
            min_length=1, max_length=1024, pattern=NO_NUL, description="Only this playbook path."
        ),
    ] = None,
) -> dict[str, Any]:
    """Statistics from the event log (refreshed at most every ``$PLAYLOOP_STATS_MAX_AGE``
    seconds): per playbook, step, tool and error class: duration quantiles, failure rates,
    the success probability of attempt k after an error class, time to recovery, approval
    and override rates, feedback labels. ``checkpoint`` is the last event id counted."""
    return ctx.engine.stats.maybe_refresh().to_dict(playbook)


@router.get("/api/learn/suggest", responses=documented(404))
def learn_suggest(ctx: Context, _: Viewer, playbook: PlaybookPath) -> dict[str, Any]:
    """Suggestions for a playbook (its latest catalog version): retries, timeouts, flaky and
    slow steps, steps that could run in parallel, approvals always granted or overridden;
    each with its evidence and a confidence in 0..1. 404 for a playbook not in the catalog."""
    from playloop.dsl.load import load_text
    from playloop.learn.suggest import suggest

    entry = ctx.store.catalog_get(playbook)
    if entry is None or not entry.content:
        raise not_found(f"no playbook '{playbook}' in the catalog")
    try:
        flow = load_text(entry.content, playbook)
    except PlaybookError as exc:  # an old version the DSL no longer accepts
        raise not_found(f"playbook '{playbook}' no longer loads: {exc}") from None
    found = suggest(ctx.store, flow, ctx.engine.stats.maybe_refresh())
    return {"playbook": flow.path, "suggestions": [s.to_dict() for s in found]}
