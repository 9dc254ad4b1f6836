"""The playbook catalog: register (validated by the DSL), list, get by path and version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from playloop.api.auth import Operator, Viewer
from playloop.api.context import Context
from playloop.api.errors import ApiError, not_found
from playloop.api.models import (
    CatalogEntryOut,
    CatalogEntryWithContent,
    CatalogList,
    RegisterRequest,
    RegisterResponse,
)
from playloop.api.routes import documented, documented_body
from playloop.dsl.errors import PlaybookError
from playloop.dsl.load import load_text
from playloop.store.base import CatalogEntry

router = APIRouter(prefix="/api/catalog", tags=["catalog"])


def _out(entry: CatalogEntry) -> CatalogEntryOut:
    return CatalogEntryOut(
        catalog_id=str(entry.catalog_id),
        path=entry.path,
        version=entry.version,
        content_hash=entry.content_hash,
        source_file=entry.source_file,
        created_at=entry.created_at,
    )


@router.post("/register", responses=documented_body())
def register(body: RegisterRequest, ctx: Context, _: Operator) -> RegisterResponse:
    """Validate a playbook and store it as the next version of its path (unless unchanged).

    An invalid playbook is a 422 whose ``problems`` list each problem as
    ``file:line:col: step 'x': field 'y': message``.
    """
    try:
        text = body.text()
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    name = body.filename or "<content>"
    try:
        flow = load_text(text, filename=name)
    except PlaybookError as exc:
        count = len(exc.problems)
        raise ApiError(
            422,
            f"the playbook is not valid ({count} problem{'s' if count != 1 else ''}): "
            + str(exc.problems[0] if exc.problems else exc),
            code="invalid_playbook",
            problems=[str(p) for p in exc.problems],
        ) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ApiError(
            422, f"the playbook could not be read: {exc}", code="invalid_playbook"
        ) from None
    entry = ctx.store.catalog_register(flow.path, text, flow.content_hash, None)
    return RegisterResponse(
        path=entry.path,
        version=entry.version,
        catalog_id=str(entry.catalog_id),
        content_hash=entry.content_hash,
    )


@router.get("/list", responses=documented())
def catalog_list(ctx: Context, _: Viewer) -> CatalogList:
    """Every catalog entry (every version of every path), without content."""
    return CatalogList(items=[_out(e) for e in ctx.store.catalog_list()])


@router.get("/{path:path}", responses=documented(404))
def catalog_get(
    path: Annotated[str, Path(min_length=1, max_length=1024, description="Playbook path.")],
    ctx: Context,
    _: Viewer,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> CatalogEntryWithContent:
    """One catalog entry with its YAML: the latest version, or ``?version=N``."""
    entry = ctx.store.catalog_get(path, version)
    if entry is None or entry.content is None:
        which = f"version {version}" if version is not None else "any version"
        raise not_found(f"playbook '{path}' ({which}) is not in the catalog")
    return CatalogEntryWithContent(**_out(entry).model_dump(), content=entry.content)
