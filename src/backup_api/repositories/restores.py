"""Restore records (newest first in a page)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, or_, select

from backup_api.models import JobStatus, Restore
from backup_api.repositories.owned import OwnedTable

_RESTORES = OwnedTable(Restore.__table__, newest_first=True)  # type: ignore[attr-defined]
_TABLE = _RESTORES.table

get = _RESTORES.get
page = _RESTORES.page
insert_restore = _RESTORES.insert
delete_restore = _RESTORES.delete
delete_of_user = _RESTORES.delete_of_user

_PENDING_READERS = (
    select(func.count())
    .select_from(_TABLE)
    .where(
        or_(
            _TABLE.c.backup_id == bindparam("backup_id"),
            _TABLE.c.safety_backup_id == bindparam("backup_id"),
        ),
        _TABLE.c.status == JobStatus.PENDING.value,
    )
)
_IDS_OF_USER = select(_TABLE.c.id).where(_TABLE.c.user_id == bindparam("user_id"))


def pending_readers(connection: Connection, backup_id: int) -> int:
    """Pending restores that read this backup, or run it first (their target's)."""
    return int(connection.execute(_PENDING_READERS, {"backup_id": backup_id}).scalar_one())


def ids_of_user(connection: Connection, user_id: int) -> list[int]:
    return list(connection.execute(_IDS_OF_USER, {"user_id": user_id}).scalars())
