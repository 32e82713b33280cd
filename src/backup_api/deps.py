"""Shared dependencies: the application state, the caller, the owned resource a path names
(loaded through ``services.ownership``, so that no route repeats the ownership check), and
pagination."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Connection

from backup_api import logcontext
from backup_api.exceptions import BadRequest, Forbidden, Unauthorized
from backup_api.models import MAX_ID
from backup_api.principals import Principal
from backup_api.repositories import Record, users
from backup_api.security import InvalidTokenError
from backup_api.services import api_tokens
from backup_api.services.ownership import (
    API_TOKEN,
    BACKUP,
    DATABASE,
    NOTIFICATION,
    RESTORE,
    STORAGE,
    Resource,
    load_owned,
)
from backup_api.state import AppState

# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per request that costs more than the work.


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.backup_api
    return state


StateDep = Annotated[AppState, Depends(get_state)]


class BearerToken(OAuth2PasswordBearer):
    """The OAuth2 password flow as the document's scheme (Swagger UI's Authorize then takes
    an e-mail and a password and gets its token from ``POST /auth/token``), reading any
    bearer token: one from ``/auth/login`` or a personal API token works the same. It hands
    back the bare token, without building a credentials model on every request."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return token


TOKEN_URL = "/auth/token"  # noqa: S105 (a path)
bearer_scheme = BearerToken(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    scheme_name="OAuth2Password",
    description="E-mail (`username`) and password, exchanged for a token at "
    "`POST /auth/token`; `client_id` and `client_secret` are not used",
)
BearerDep = Annotated[str | None, Depends(bearer_scheme)]


def _load_principal(connection: Connection, user_id: int) -> Principal | None:
    row = users.principal(connection, user_id)
    if row is None:
        return None
    return Principal(id=row.id, role=row.role, token_key=row.token_key)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _principal_from_token(
    state: AppState, token: str | None, client: str | None
) -> Principal | None:
    principal = await _resolve_principal(state, token, client)
    if principal is not None:
        # The request's log lines and audit entries name the caller from here on.
        logcontext.set_user(principal.id)
    return principal


async def _resolve_principal(
    state: AppState, token: str | None, client: str | None
) -> Principal | None:
    if token is None:
        return None
    if api_tokens.is_api_token(token):
        return await api_tokens.principal_of(state.metadata, token, client)
    try:
        claims = state.tokens.decode(token)
    except InvalidTokenError:
        raise Unauthorized("Token invalide ou expiré") from None
    if claims.user_id > MAX_ID:
        raise Unauthorized("Token invalide ou expiré")
    principal = state.principals.get(claims.user_id)
    # A key that differs from the cached one may be newer (changed by another process):
    # the row decides, and an old token gets its 401 from there.
    if principal is None or not principal.holds(claims.token_key):
        user_id = claims.user_id
        principal = await state.metadata.read(lambda c: _load_principal(c, user_id))
        if principal is None or not principal.holds(claims.token_key):
            raise Unauthorized("Token invalide ou expiré")
        state.principals.put(principal)
    return principal


async def current_user(request: Request, state: StateDep, token: BearerDep) -> Principal:
    principal = await _principal_from_token(state, token, client_address(request))
    if principal is None:
        raise Unauthorized("Authentification requise")
    return principal


async def optional_user(request: Request, state: StateDep, token: BearerDep) -> Principal | None:
    return await _principal_from_token(state, token, client_address(request))


async def principal_or_none(
    state: AppState, token: str | None, client: str | None = None
) -> Principal | None:
    """The caller where the answer only adds detail (``/health``): a bad token, or a
    metadata database that cannot tell, just means the public answer."""
    try:
        return await _principal_from_token(state, token, client)
    except Exception:
        return None


CurrentUser = Annotated[Principal, Depends(current_user)]
OptionalUser = Annotated[Principal | None, Depends(optional_user)]


async def admin_user(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise Forbidden("Action réservée aux administrateurs")
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]


IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


async def _load(
    state: AppState, resource: Resource[Record], record_id: int, user: Principal
) -> Record:
    return await state.metadata.read(lambda c: load_owned(c, resource, record_id, user))


async def load_database(database_id: IdPath, user: CurrentUser, state: StateDep) -> Record:
    return await _load(state, DATABASE, database_id, user)


async def load_backup(backup_id: IdPath, user: CurrentUser, state: StateDep) -> Record:
    return await _load(state, BACKUP, backup_id, user)


async def load_restore(restore_id: IdPath, user: CurrentUser, state: StateDep) -> Record:
    return await _load(state, RESTORE, restore_id, user)


async def load_api_token(token_id: IdPath, user: CurrentUser, state: StateDep) -> Record:
    return await _load(state, API_TOKEN, token_id, user)


async def load_storage(storage_id: IdPath, user: CurrentUser, state: StateDep) -> Record:
    return await _load(state, STORAGE, storage_id, user)


async def load_notification(notification_id: IdPath, user: CurrentUser, state: StateDep) -> Record:
    return await _load(state, NOTIFICATION, notification_id, user)


DatabaseDep = Annotated[Record, Depends(load_database)]
BackupDep = Annotated[Record, Depends(load_backup)]
RestoreDep = Annotated[Record, Depends(load_restore)]
ApiTokenDep = Annotated[Record, Depends(load_api_token)]
StorageDep = Annotated[Record, Depends(load_storage)]
NotificationDep = Annotated[Record, Depends(load_notification)]


class Page:
    def __init__(self, limit: int, offset: int) -> None:
        self.limit = limit
        self.offset = offset


async def pagination(
    state: StateDep,
    # The maximum is a setting: checked below, and written into the document by openapi.py.
    limit: Annotated[
        int | None,
        Query(ge=1, description="Page size (default `BACKUP_API_DEFAULT_PAGE_SIZE`)"),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip")] = 0,
) -> Page:
    maximum = state.settings.max_page_size
    if limit is not None and limit > maximum:
        raise BadRequest(f"Données invalides: limit: valeur trop grande (maximum {maximum})")
    return Page(limit or min(state.settings.default_page_size, maximum), offset)


PageDep = Annotated[Page, Depends(pagination)]
