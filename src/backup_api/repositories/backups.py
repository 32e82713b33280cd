"""Backup records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, delete, func, insert, select

from backup_api.models import Backup, JobStatus
from backup_api.repositories import Record

_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]


def _listing(*, own: bool, of_database: bool) -> Select[Any]:
    query = select(_BACKUPS).order_by(_BACKUPS.c.id.desc())
    if own:
        query = query.where(_BACKUPS.c.user_id == bindparam("user_id"))
    if of_database:
        query = query.where(_BACKUPS.c.database_id == bindparam("database_id"))
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


_BY_ID = select(_BACKUPS).where(_BACKUPS.c.id == bindparam("backup_id"))
_LISTINGS = {
    (own, of_database): _listing(own=own, of_database=of_database)
    for own in (False, True)
    for of_database in (False, True)
}
_NAMES_TAKEN = select(_BACKUPS.c.filename).where(
    _BACKUPS.c.db_type == bindparam("db_type"),
    _BACKUPS.c.filename.startswith(bindparam("stem")),
)
_INSERT = insert(_BACKUPS).returning(*_BACKUPS.c)
_DELETE = delete(_BACKUPS).where(_BACKUPS.c.id == bindparam("backup_id"))
_STORED_BYTES = select(func.coalesce(func.sum(_BACKUPS.c.size), 0)).where(
    _BACKUPS.c.user_id == bindparam("user_id"),
    _BACKUPS.c.status == JobStatus.COMPLETED.value,
)
_FILES_OF_USER = select(_BACKUPS.c.id, _BACKUPS.c.db_type, _BACKUPS.c.filename).where(
    _BACKUPS.c.user_id == bindparam("user_id")
)


def get(connection: Connection, backup_id: int) -> Record | None:
    return connection.execute(_BY_ID, {"backup_id": backup_id}).first()


def page(
    connection: Connection,
    *,
    owner_id: int | None,
    database_id: int | None,
    limit: int,
    offset: int,
) -> Iterable[Record]:
    """Newest first; ``owner_id``'s only (everyone's if ``None``), of ``database_id`` only
    (of any if ``None``)."""
    query = _LISTINGS[(owner_id is not None, database_id is not None)]
    parameters = {"user_id": owner_id, "database_id": database_id, "limit": limit, "offset": offset}
    return connection.execute(query, parameters)


def names_taken(connection: Connection, db_type: str, stem: str) -> set[str]:
    """The file names of ``db_type`` backups that start with ``stem``."""
    rows = connection.execute(_NAMES_TAKEN, {"db_type": db_type, "stem": stem})
    return set(rows.scalars())


def insert_backup(connection: Connection, values: dict[str, Any]) -> Record:
    return connection.execute(_INSERT, values).one()


def delete_backup(connection: Connection, backup_id: int) -> None:
    connection.execute(_DELETE, {"backup_id": backup_id})


def stored_bytes(connection: Connection, user_id: int) -> int:
    """What the user's completed backups occupy."""
    return int(connection.execute(_STORED_BYTES, {"user_id": user_id}).scalar_one())


def files_of_user(connection: Connection, user_id: int) -> list[Record]:
    """``id``, ``db_type`` and ``filename`` of each of the user's backups."""
    return list(connection.execute(_FILES_OF_USER, {"user_id": user_id}))


def delete_of_user(connection: Connection, user_id: int) -> None:
    connection.execute(delete(_BACKUPS).where(_BACKUPS.c.user_id == user_id))
