"""Restore records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select

from backup_api.models import JobStatus, Restore
from backup_api.repositories import Record

_RESTORES: Table = Restore.__table__  # type: ignore[attr-defined]

_BY_ID = select(_RESTORES).where(_RESTORES.c.id == bindparam("restore_id"))
_PAGE = select(_RESTORES).order_by(_RESTORES.c.id.desc())
_PAGES = {
    own: (_PAGE.where(_RESTORES.c.user_id == bindparam("user_id")) if own else _PAGE)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
    for own in (False, True)
}
_INSERT = insert(_RESTORES).returning(*_RESTORES.c)
_DELETE = delete(_RESTORES).where(_RESTORES.c.id == bindparam("restore_id"))
_PENDING_READERS = (
    select(func.count())
    .select_from(_RESTORES)
    .where(
        or_(
            _RESTORES.c.backup_id == bindparam("backup_id"),
            _RESTORES.c.safety_backup_id == bindparam("backup_id"),
        ),
        _RESTORES.c.status == JobStatus.PENDING.value,
    )
)
_IDS_OF_USER = select(_RESTORES.c.id).where(_RESTORES.c.user_id == bindparam("user_id"))


def get(connection: Connection, restore_id: int) -> Record | None:
    return connection.execute(_BY_ID, {"restore_id": restore_id}).first()


def page(connection: Connection, owner_id: int | None, limit: int, offset: int) -> list[Record]:
    """Newest first; ``owner_id``'s only, or everyone's when it is ``None``."""
    parameters = {"user_id": owner_id, "limit": limit, "offset": offset}
    return list(connection.execute(_PAGES[owner_id is not None], parameters))


def insert_restore(connection: Connection, values: dict[str, Any]) -> Record:
    return connection.execute(_INSERT, values).one()


def delete_restore(connection: Connection, restore_id: int) -> None:
    connection.execute(_DELETE, {"restore_id": restore_id})


def pending_readers(connection: Connection, backup_id: int) -> int:
    """Pending restores that read this backup, or run it first (their target's)."""
    return int(connection.execute(_PENDING_READERS, {"backup_id": backup_id}).scalar_one())


def ids_of_user(connection: Connection, user_id: int) -> list[int]:
    return list(connection.execute(_IDS_OF_USER, {"user_id": user_id}).scalars())


def delete_of_user(connection: Connection, user_id: int) -> None:
    connection.execute(delete(_RESTORES).where(_RESTORES.c.user_id == user_id))
