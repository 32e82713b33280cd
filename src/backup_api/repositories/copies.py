"""Each backup's copies (one per destination: the local backup root, each storage), and
the destinations a new backup of a database gets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from backup_api.models import BackupCopy, CopyStatus, DatabaseStorage, Role, Storage, User
from backup_api.repositories import Record

_COPIES: Table = BackupCopy.__table__  # type: ignore[attr-defined]
_STORAGES: Table = Storage.__table__  # type: ignore[attr-defined]
_DESTINATIONS: Table = DatabaseStorage.__table__  # type: ignore[attr-defined]
_USERS: Table = User.__table__  # type: ignore[attr-defined]

#: The name of the service's own backup root as a destination.
LOCAL = "local"

_OF_BACKUP = (
    select(_COPIES).where(_COPIES.c.backup_id == bindparam("backup_id")).order_by(_COPIES.c.id)
)
_INSERT = insert(_COPIES).returning(*_COPIES.c)
_DESTINATIONS_OF = (
    select(_STORAGES)
    .join(_DESTINATIONS, _DESTINATIONS.c.storage_id == _STORAGES.c.id)
    .where(_DESTINATIONS.c.database_id == bindparam("database_id"))
    .order_by(_DESTINATIONS.c.position)
)


def destinations_of(connection: Connection, database_id: int) -> list[Record]:
    """The storages a database's backups go to, in the owner's order."""
    return list(connection.execute(_DESTINATIONS_OF, {"database_id": database_id}))


def insert_copies(connection: Connection, rows: list[dict[str, Any]]) -> list[Record]:
    return [connection.execute(_INSERT, row).one() for row in rows]


def of_backup(connection: Connection, backup_id: int) -> list[Record]:
    return list(connection.execute(_OF_BACKUP, {"backup_id": backup_id}))


_OF_BACKUPS = (
    select(_COPIES)
    .where(_COPIES.c.backup_id.in_(bindparam("backup_ids", expanding=True)))
    .order_by(_COPIES.c.id)
)


def of_backups(connection: Connection, backup_ids: Iterable[int]) -> dict[int, list[Record]]:
    """The copies of several backups at once (a listing's page), by backup id."""
    ids = list(backup_ids)
    found: dict[int, list[Record]] = {backup_id: [] for backup_id in ids}
    if not ids:
        return found
    for row in connection.execute(_OF_BACKUPS, {"backup_ids": ids}):
        found[row.backup_id].append(row)
    return found


def get(connection: Connection, copy_id: int) -> Record | None:
    return connection.execute(select(_COPIES).where(_COPIES.c.id == copy_id)).first()


def update_copy(connection: Connection, copy_id: int, values: Mapping[str, Any]) -> None:
    connection.execute(update(_COPIES).where(_COPIES.c.id == copy_id).values(**values))


def update_copies(connection: Connection, copy_ids: list[int], values: Mapping[str, Any]) -> None:
    connection.execute(update(_COPIES).where(_COPIES.c.id.in_(copy_ids)).values(**values))


def update_copies_of(
    connection: Connection, backup_id: int, statuses: Iterable[str], values: Mapping[str, Any]
) -> None:
    """Change every copy of a backup whose status is among ``statuses``."""
    connection.execute(
        update(_COPIES)
        .where(_COPIES.c.backup_id == backup_id, _COPIES.c.status.in_(list(statuses)))
        .values(**values)
    )


def delete_copy(connection: Connection, copy_id: int) -> None:
    connection.execute(delete(_COPIES).where(_COPIES.c.id == copy_id))


def due_for_retry(connection: Connection, now: datetime) -> list[int]:
    """Backups with a failed copy whose automatic retry is due."""
    query = (
        select(_COPIES.c.backup_id)
        .where(
            _COPIES.c.status == CopyStatus.FAILED.value,
            _COPIES.c.next_retry_at.is_not(None),
            _COPIES.c.next_retry_at <= now,
        )
        .distinct()
        .order_by(_COPIES.c.backup_id)
    )
    return list(connection.execute(query).scalars())


def storage_of_copy(connection: Connection, storage_id: int) -> tuple[Record | None, bool]:
    """A storage and whether its owner is an admin (the outbound rule spares admins)."""
    query = (
        select(_STORAGES, _USERS.c.role.label("owner_role"))
        .join(_USERS, _USERS.c.id == _STORAGES.c.user_id)
        .where(_STORAGES.c.id == storage_id)
    )
    row = connection.execute(query).first()
    return row, row is not None and row.owner_role == Role.ADMIN.value


def next_retry(connection: Connection) -> datetime | None:
    """When the next automatic retry of a copy is due, if any is planned."""
    query = select(func.min(_COPIES.c.next_retry_at)).where(
        _COPIES.c.status == CopyStatus.FAILED.value
    )
    value: datetime | None = connection.execute(query).scalar()
    return value


def storage_ids(connection: Connection) -> list[int]:
    """Every storage's id (recovery looks at each one's open uploads)."""
    return list(connection.execute(select(_STORAGES.c.id).order_by(_STORAGES.c.id)).scalars())


def fail_running(connection: Connection, reason: str, at: datetime) -> None:
    """Copies left ``running`` by a stopped service: failed, and retried soon."""
    connection.execute(
        update(_COPIES)
        .where(_COPIES.c.status == CopyStatus.RUNNING.value)
        .values(status=CopyStatus.FAILED.value, error_msg=reason, next_retry_at=at, updated_at=at)
    )


def object_keys_of_storage(connection: Connection, storage_id: int) -> set[str]:
    """The keys of every copy this service records in a storage."""
    query = select(_COPIES.c.object_key).where(
        _COPIES.c.storage_id == storage_id, _COPIES.c.object_key.is_not(None)
    )
    return set(connection.execute(query).scalars())
