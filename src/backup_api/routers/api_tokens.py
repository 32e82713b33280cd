"""Personal API tokens, for scripts and CI: each account manages its own."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from backup_api.deps import (
    ApiTokenDep,
    CurrentUser,
    PageDep,
    StateDep,
    client_address,
)
from backup_api.models import (
    MAX_API_TOKEN_DAYS,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenItem,
    ApiTokenList,
    ApiTokenPublic,
    MessageResponse,
)
from backup_api.repositories import Record
from backup_api.routers.responses import OWNER_ONLY, ErrorCase, errors
from backup_api.services import api_tokens as service

router = APIRouter(prefix="/api/tokens", tags=["personal API tokens"])

TOKEN_NOT_FOUND = ErrorCase(404, service.NOT_FOUND, "no personal API token has this id")
FROM_API_TOKEN = ErrorCase(
    403, service.FROM_API_TOKEN, "the request itself carries a personal API token"
)
TOO_MANY = ErrorCase(
    409,
    service.too_many(100),
    "the account holds `BACKUP_API_MAX_API_TOKENS_PER_USER` tokens already",
)
CREATION_THROTTLED = ErrorCase(
    429,
    service.CREATION_THROTTLED,
    "the account created `BACKUP_API_API_TOKEN_CREATIONS_PER_HOUR` tokens within the hour",
)
BAD_LIFETIME = ErrorCase(
    400,
    "Données invalides: expires_in_days: valeur trop grande",
    f"`expires_in_days` is above {MAX_API_TOKEN_DAYS}",
)


def _public(token: Record) -> ApiTokenPublic:
    return ApiTokenPublic.model_validate(token, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiTokenCreated,
    summary="Create a personal API token",
    responses=errors(BAD_LIFETIME, FROM_API_TOKEN, TOO_MANY, CREATION_THROTTLED),
)
async def create_token(
    data: ApiTokenCreate,
    request: Request,
    caller: CurrentUser,
    state: StateDep,
) -> ApiTokenCreated:
    """A token that acts as its owner (with the owner's role at the time of each request)
    until it expires or is revoked. `secret` is in this answer only: the service keeps its
    SHA-256. Send it as `Authorization: Bearer <secret>`. A password change revokes the
    account's tokens unless asked to keep them; a role change does not."""
    token, secret = await service.create(
        metadata=state.metadata,
        settings=state.settings,
        limiter=state.token_creations,
        caller=caller,
        data=data,
        client=client_address(request),
    )
    return ApiTokenCreated(message="Token créé avec succès", token=_public(token), secret=secret)


@router.get(
    "",
    response_model=ApiTokenList,
    summary="List one's personal API tokens",
    responses=errors(),
)
async def list_tokens(caller: CurrentUser, state: StateDep, page: PageDep) -> ApiTokenList:
    """The caller's own tokens (an admin's too: theirs only), oldest first, without their
    secrets."""
    tokens = await service.list_tokens(
        metadata=state.metadata, user_id=caller.id, limit=page.limit, offset=page.offset
    )
    return ApiTokenList(tokens=[_public(token) for token in tokens])


@router.get(
    "/{token_id}",
    response_model=ApiTokenItem,
    summary="Get a personal API token",
    responses=errors(OWNER_ONLY, TOKEN_NOT_FOUND),
)
async def get_token(token: ApiTokenDep) -> ApiTokenItem:
    """One token, without its secret."""
    return ApiTokenItem(token=_public(token))


@router.delete(
    "/{token_id}",
    response_model=MessageResponse,
    summary="Revoke a personal API token",
    responses=errors(OWNER_ONLY, TOKEN_NOT_FOUND),
)
async def revoke_token(
    token: ApiTokenDep, request: Request, caller: CurrentUser, state: StateDep
) -> MessageResponse:
    """The token stops working at once: the next request carrying it is refused (401)."""
    await service.revoke(
        metadata=state.metadata, token=token, caller=caller, client=client_address(request)
    )
    return MessageResponse(message="Token révoqué avec succès")
