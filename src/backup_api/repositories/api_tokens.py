"""Personal API tokens (oldest first in a page), and the lookup of a presented one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Table, bindparam, func, select, update

from backup_api.models import ApiToken, User
from backup_api.repositories import Record
from backup_api.repositories.owned import OwnedTable

_RECORDS = OwnedTable(ApiToken.__table__, newest_first=False)  # type: ignore[attr-defined]
_TOKENS = _RECORDS.table
_USERS: Table = User.__table__  # type: ignore[attr-defined]

get = _RECORDS.get
page = _RECORDS.page
insert_token = _RECORDS.insert
delete_token = _RECORDS.delete

_COUNT_OF_USER = (
    select(func.count()).select_from(_TOKENS).where(_TOKENS.c.user_id == bindparam("user_id"))
)
_IDS_OF_USER = (
    select(_TOKENS.c.id).where(_TOKENS.c.user_id == bindparam("user_id")).order_by(_TOKENS.c.id)
)
# What a request carrying a token needs: the token's state and its owner's role, now.
_BY_HASH = (
    select(
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


def count_of_user(connection: Connection, user_id: int) -> int:
    return int(connection.execute(_COUNT_OF_USER, {"user_id": user_id}).scalar_one())


def delete_of_user(connection: Connection, user_id: int) -> list[int]:
    """Delete every token of the account; the ids they had."""
    ids = list(connection.execute(_IDS_OF_USER, {"user_id": user_id}).scalars())
    _RECORDS.delete_of_user(connection, user_id)
    return ids


def by_hash(connection: Connection, token_hash: str) -> Record | None:
    """``id``, ``expires_at``, ``last_used_at`` of the token, ``user_id`` and ``role`` of its
    owner."""
    return connection.execute(_BY_HASH, {"token_hash": token_hash}).first()


def touch(connection: Connection, token_id: int, now: datetime) -> None:
    """Record a use of the token."""
    connection.execute(_TOUCH, {"token_id": token_id, "now": now})
