"""Personal API tokens: created with a name and a lifetime, shown once, kept as a hash,
revoked at once.

A token is not a JWT: every request that carries one reads its row, so that a revoked,
expired or deleted token, or its owner's new role, takes effect on the next request (no
cache keeps it alive, in this process or another).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, update
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api import audit, security
from backup_api.config import Settings
from backup_api.db import after_commit
from backup_api.exceptions import Conflict, Forbidden, TooManyRequests
from backup_api.models import (
    API_TOKEN_PREFIX,
    ApiToken,
    ApiTokenCreate,
    User,
    as_utc,
    utcnow,
)
from backup_api.principals import Principal
from backup_api.ratelimit import RateLimiter

NOT_FOUND = "Token introuvable"
CREATION_THROTTLED = "Trop de tokens créés récemment, réessayez plus tard"
FROM_API_TOKEN = (
    "Un token d'API ne peut pas créer d'autre token: connectez-vous avec votre mot de passe"  # noqa: S105
)

#: ``last_used_at`` is written at most this often per token: a script's every request
#: would otherwise be a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def too_many(limit: int) -> str:
    return f"Nombre maximal de tokens atteint ({limit}): révoquez-en avant d'en créer"


def is_api_token(token: str) -> bool:
    return token.startswith(API_TOKEN_PREFIX)


async def create(
    *,
    session: AsyncSession,
    settings: Settings,
    limiter: RateLimiter,
    caller: Principal,
    data: ApiTokenCreate,
    client: str | None,
) -> tuple[ApiToken, str]:
    """A new token of the caller's and its secret (the only time it exists in clear)."""
    if caller.api_token_id is not None:
        # A leaked token must not be able to outlive its own revocation.
        raise Forbidden(FROM_API_TOKEN)
    count = await session.exec(
        select(func.count()).select_from(ApiToken).where(col(ApiToken.user_id) == caller.id)
    )
    if int(count.one()) >= settings.max_api_tokens_per_user:
        raise Conflict(too_many(settings.max_api_tokens_per_user))
    retry_after = limiter.acquire(caller.id)
    if retry_after:
        audit.record(audit.API_TOKEN_CREATE, audit.THROTTLED, client=client, user_id=caller.id)
        raise TooManyRequests(CREATION_THROTTLED, retry_after=retry_after)
    secret, token_hash = security.new_api_token(API_TOKEN_PREFIX)
    now = utcnow()
    expires = None if data.expires_in_days is None else now + timedelta(days=data.expires_in_days)
    token = ApiToken(
        user_id=caller.id, name=data.name, token_hash=token_hash, created_at=now, expires_at=expires
    )
    session.add(token)
    await session.flush()
    token_id = token.id
    after_commit(
        session,
        lambda: audit.record(
            audit.API_TOKEN_CREATE,
            audit.SUCCESS,
            client=client,
            user_id=caller.id,
            token_id=token_id,
            expires_at=expires.isoformat() if expires else "never",
        ),
    )
    return token, secret


async def list_tokens(
    *, session: AsyncSession, user_id: int, limit: int, offset: int
) -> list[ApiToken]:
    result = await session.exec(
        select(ApiToken)
        .where(col(ApiToken.user_id) == user_id)
        .order_by(col(ApiToken.id))
        .limit(limit)
        .offset(offset)
    )
    return list(result.all())


async def revoke(
    *, session: AsyncSession, token: ApiToken, caller: Principal, client: str | None
) -> None:
    await session.delete(token)
    await session.flush()
    token_id, owner_id = token.id, token.user_id
    after_commit(
        session,
        lambda: audit.record(
            audit.API_TOKEN_REVOKE,
            audit.SUCCESS,
            client=client,
            user_id=caller.id,
            owner_id=owner_id if owner_id != caller.id else None,
            token_id=token_id,
        ),
    )


async def revoke_all(
    session: AsyncSession, user_id: int, *, client: str | None, reason: str
) -> int:
    """Revoke every token of the account; how many there were."""
    result = await session.exec(select(ApiToken).where(col(ApiToken.user_id) == user_id))
    tokens = list(result.all())
    ids = [token.id for token in tokens]
    for token in tokens:
        await session.delete(token)
    await session.flush()
    if ids:
        token_ids = ",".join(str(token_id) for token_id in ids)
        after_commit(
            session,
            lambda: audit.record(
                audit.API_TOKEN_REVOKE,
                audit.SUCCESS,
                client=client,
                user_id=user_id,
                token_ids=token_ids,
                reason=reason,
            ),
        )
    return len(ids)


# --------------------------------------------------------------------------- requests

_TOKENS = ApiToken.__table__  # type: ignore[attr-defined]
_USERS = User.__table__  # type: ignore[attr-defined]
_LOOKUP = (
    core_select(
        _TOKENS.c.id,
        _TOKENS.c.expires_at,
        _TOKENS.c.last_used_at,
        _USERS.c.id.label("user_id"),
        _USERS.c.role,
    )
    .join(_USERS, _USERS.c.id == _TOKENS.c.user_id)
    .where(_TOKENS.c.token_hash == bindparam("token_hash"))
)
_TOUCH = (
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
)


@dataclass(frozen=True, slots=True)
class Lookup:
    principal: Principal | None
    #: Set when the token exists but may not be used (``expired``).
    refused: str | None = None
    token_id: int | None = None
    touch: bool = False


def lookup(connection: Connection, secret: str, now: datetime) -> Lookup:
    """The caller a token stands for, read from its row (see the module's docstring)."""
    row = connection.execute(_LOOKUP, {"token_hash": security.hash_api_token(secret)}).first()
    if row is None:
        return Lookup(None)
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        return Lookup(None, refused="expired", token_id=row.id)
    last_used = row.last_used_at
    touch = last_used is None or now - as_utc(last_used) >= LAST_USED_RESOLUTION
    principal = Principal(id=row.user_id, role=row.role, api_token_id=row.id)
    return Lookup(principal, token_id=row.id, touch=touch)


def touch(connection: Connection, token_id: int, now: datetime) -> None:
    connection.execute(_TOUCH, {"token_id": token_id, "now": now})
