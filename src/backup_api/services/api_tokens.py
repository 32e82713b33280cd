"""Personal API tokens: created with a name and a lifetime, shown once, kept as a hash,
revoked at once.

A token is not a JWT: every request that carries one reads its row, so that a revoked,
expired or deleted token, or its owner's new role, takes effect on the next request (no
cache keeps it alive, in this process or another).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from backup_api import audit, security
from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.exceptions import Conflict, Forbidden, TooManyRequests, Unauthorized
from backup_api.models import API_TOKEN_PREFIX, ApiTokenCreate, as_utc, utcnow
from backup_api.principals import Principal
from backup_api.ratelimit import RateLimiter
from backup_api.repositories import Record, api_tokens
from backup_api.services.ownership import API_TOKEN

NOT_FOUND = API_TOKEN.missing
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
    metadata: Metadata,
    settings: Settings,
    limiter: RateLimiter,
    caller: Principal,
    data: ApiTokenCreate,
    client: str | None,
) -> tuple[Record, str]:
    """A new token of the caller's and its secret (the only time it exists in clear)."""
    if caller.api_token_id is not None:
        # A leaked token must not be able to outlive its own revocation.
        raise Forbidden(FROM_API_TOKEN)
    user_id = caller.id
    if await metadata.read(lambda c: api_tokens.count_of_user(c, user_id)) >= (
        settings.max_api_tokens_per_user
    ):
        raise Conflict(too_many(settings.max_api_tokens_per_user))
    retry_after = limiter.acquire(user_id)
    if retry_after:
        audit.record(audit.API_TOKEN_CREATE, audit.THROTTLED, client=client, user_id=user_id)
        raise TooManyRequests(CREATION_THROTTLED, retry_after=retry_after)
    secret, token_hash = security.new_api_token(API_TOKEN_PREFIX)
    now = utcnow()
    expires = None if data.expires_in_days is None else now + timedelta(days=data.expires_in_days)
    values = {
        "user_id": user_id,
        "name": data.name,
        "token_hash": token_hash,
        "created_at": now,
        "expires_at": expires,
    }
    token = await metadata.write(lambda c: api_tokens.insert_token(c, values))
    audit.record(
        audit.API_TOKEN_CREATE,
        audit.SUCCESS,
        client=client,
        user_id=user_id,
        target_type=audit.API_TOKEN,
        target_id=token.id,
        expires_at=expires.isoformat() if expires else "never",
    )
    return token, secret


async def list_tokens(*, metadata: Metadata, user_id: int, limit: int, offset: int) -> list[Record]:
    """The account's own tokens, oldest first."""
    return await metadata.read(lambda c: api_tokens.page(c, user_id, limit, offset))


async def revoke(
    *, metadata: Metadata, token: Record, caller: Principal, client: str | None
) -> None:
    token_id: int = token.id
    owner_id: int = token.user_id
    await metadata.write(lambda c: api_tokens.delete_token(c, token_id))
    audit.record(
        audit.API_TOKEN_REVOKE,
        audit.SUCCESS,
        client=client,
        user_id=caller.id,
        owner_id=owner_id if owner_id != caller.id else None,
        target_type=audit.API_TOKEN,
        target_id=token_id,
    )


def audit_revoked(token_ids: list[int], *, client: str | None, user_id: int, reason: str) -> None:
    """Record that the account's tokens ``token_ids`` were revoked at once (committed)."""
    if token_ids:
        audit.record(
            audit.API_TOKEN_REVOKE,
            audit.SUCCESS,
            client=client,
            user_id=user_id,
            token_ids=",".join(str(token_id) for token_id in token_ids),
            reason=reason,
        )


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Lookup:
    principal: Principal | None
    #: Set when the token exists but may not be used (``expired``).
    refused: str | None = None
    token_id: int | None = None
    touch: bool = False


def lookup(connection: Connection, secret: str, now: datetime) -> Lookup:
    """The caller a token stands for, read from its row (see the module's docstring)."""
    row = api_tokens.by_hash(connection, security.hash_api_token(secret))
    if row is None:
        return Lookup(None)
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        return Lookup(None, refused="expired", token_id=row.id)
    last_used = row.last_used_at
    touch = last_used is None or now - as_utc(last_used) >= LAST_USED_RESOLUTION
    principal = Principal(id=row.user_id, role=row.role, api_token_id=row.id)
    return Lookup(principal, token_id=row.id, touch=touch)


async def principal_of(metadata: Metadata, secret: str, client: str | None) -> Principal:
    """The caller a presented personal token stands for, or 401. Its row is read on every
    request, never cached: its revocation and its owner's role changes apply to the very
    next one."""
    now = utcnow()
    found = await metadata.read(lambda c: lookup(c, secret, now))
    if found.principal is None:
        audit.record(
            audit.API_TOKEN_USE,
            audit.FAILURE,
            client=client,
            target_type=audit.API_TOKEN if found.token_id is not None else None,
            target_id=found.token_id,
            reason=found.refused or "unknown",
        )
        raise Unauthorized("Token invalide ou expiré")
    token_id = found.token_id
    if found.touch and token_id is not None:
        await metadata.write(lambda c: api_tokens.touch(c, token_id, now))
    return found.principal
