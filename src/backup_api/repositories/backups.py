"""Backup records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select

from backup_api.models import Backup, JobStatus
from backup_api.repositories import Record
from backup_api.repositories.owned import OwnedTable

_RECORDS = OwnedTable(Backup.__table__, newest_first=True)  # type: ignore[attr-defined]
_BACKUPS = _RECORDS.table

get = _RECORDS.get
insert_backup = _RECORDS.insert
update_backup = _RECORDS.update
delete_backup = _RECORDS.delete
delete_of_user = _RECORDS.delete_of_user


def _listing(*, own: bool, of_database: bool) -> Select[Any]:
    query = select(_BACKUPS).order_by(_BACKUPS.c.id.desc())
    if own:
        query = query.where(_BACKUPS.c.user_id == bindparam("user_id"))
    if of_database:
        query = query.where(_BACKUPS.c.database_id == bindparam("database_id"))
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


_LISTINGS = {
    (own, of_database): _listing(own=own, of_database=of_database)
    for own in (False, True)
    for of_database in (False, True)
}
_NAMES_TAKEN = select(_BACKUPS.c.filename).where(
    _BACKUPS.c.db_type == bindparam("db_type"),
    _BACKUPS.c.filename.startswith(bindparam("stem")),
)
_STORED_BYTES = select(func.coalesce(func.sum(_BACKUPS.c.size), 0)).where(
    _BACKUPS.c.user_id == bindparam("user_id"),
    _BACKUPS.c.status == JobStatus.COMPLETED.value,
)
_PENDING_OF_DATABASE = (
    select(_BACKUPS.c.id)
    .where(
        _BACKUPS.c.database_id == bindparam("database_id"),
        _BACKUPS.c.status == JobStatus.PENDING.value,
    )
    .limit(1)
)
_FILES_OF_USER = select(_BACKUPS.c.id, _BACKUPS.c.db_type, _BACKUPS.c.filename).where(
    _BACKUPS.c.user_id == bindparam("user_id")
)


def page(
    connection: Connection,
    *,
    owner_id: int | None,
    database_id: int | None,
    limit: int,
    offset: int,
) -> Iterable[Record]:
    """Newest first; ``owner_id``'s only (everyone's if ``None``), of ``database_id`` only
    (of any if ``None``). The rows as they come: the hot listing renders them one by one."""
    query = _LISTINGS[(owner_id is not None, database_id is not None)]
    parameters = {"user_id": owner_id, "database_id": database_id, "limit": limit, "offset": offset}
    return connection.execute(query, parameters)


def names_taken(connection: Connection, db_type: str, stem: str) -> set[str]:
    """The file names of ``db_type`` backups that start with ``stem``."""
    rows = connection.execute(_NAMES_TAKEN, {"db_type": db_type, "stem": stem})
    return set(rows.scalars())


def stored_bytes(connection: Connection, user_id: int) -> int:
    """What the user's completed backups occupy."""
    return int(connection.execute(_STORED_BYTES, {"user_id": user_id}).scalar_one())


def files_of_user(connection: Connection, user_id: int) -> list[Record]:
    """``id``, ``db_type`` and ``filename`` of each of the user's backups."""
    return list(connection.execute(_FILES_OF_USER, {"user_id": user_id}))


def has_pending(connection: Connection, database_id: int) -> bool:
    """Whether a backup of the database is pending (queued or running)."""
    found = connection.execute(_PENDING_OF_DATABASE, {"database_id": database_id}).first()
    return found is not None


_LAST_DUMP_SIZE = (
    select(_BACKUPS.c.dump_size)
    .where(
        _BACKUPS.c.database_id == bindparam("database_id"),
        _BACKUPS.c.db_name == bindparam("db_name"),
        _BACKUPS.c.status == JobStatus.COMPLETED.value,
        _BACKUPS.c.dump_size > 0,
    )
    .order_by(_BACKUPS.c.id.desc())
    .limit(1)
)


def last_dump_size(connection: Connection, database_id: int, db_name: str) -> int | None:
    """The dump size of the newest completed backup of ``db_name`` through the registered
    database ``database_id`` (what the next one's progress expects), if any."""
    size = connection.execute(
        _LAST_DUMP_SIZE, {"database_id": database_id, "db_name": db_name}
    ).scalar()
    return None if size is None else int(size)
