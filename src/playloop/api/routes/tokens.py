"""API token administration (admin role): create, list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from playloop.api.auth import Admin
from playloop.api.context import Context
from playloop.api.errors import not_found
from playloop.api.models import TokenCreated, TokenCreateRequest, TokenList, TokenOut
from playloop.api.routes import documented, documented_body
from playloop.auth.tokens import TokenInfo, create_token, get_token, list_tokens, revoke

router = APIRouter(prefix="/api/tokens", tags=["tokens"])

TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="A token's public id.")]


def token_out(info: TokenInfo) -> TokenOut:
    return TokenOut(
        token_id=info.token_id,
        name=info.name,
        role=info.role,
        created_at=info.created_at,
        last_used_at=info.last_used_at,
        revoked_at=info.revoked_at,
    )


@router.get("", responses=documented())
def tokens_list(ctx: Context, _: Admin) -> TokenList:
    """Every token (revoked ones too); secrets and hashes are never shown."""
    return TokenList(items=[token_out(t) for t in list_tokens(ctx.store)])


@router.post("", status_code=201, responses=documented_body())
def tokens_create(body: TokenCreateRequest, ctx: Context, _: Admin) -> TokenCreated:
    """Create a token; the response holds the token itself, the only time it is shown."""
    new = create_token(ctx.store, body.role, body.name)
    return TokenCreated(**token_out(new.info).model_dump(), token=new.token)


@router.post("/{token_id}/revoke", responses=documented(404))
def tokens_revoke(token_id: TokenId, ctx: Context, _: Admin) -> TokenOut:
    """Revoke a token: requests with it get 401 from now on."""
    if not revoke(ctx.store, token_id):
        info = get_token(ctx.store, token_id)
        if info is None:
            raise not_found(f"no token {token_id}")
        return token_out(info)  # already revoked: revoking again changes nothing
    info = get_token(ctx.store, token_id)
    assert info is not None
    return token_out(info)
