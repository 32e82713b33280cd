"""Storages (off-site destinations, oldest first in a page) and each database's list of
them (``database_storages``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select

from backup_api.models import BackupCopy, CopyStatus, Database, DatabaseStorage, Storage
from backup_api.repositories.owned import OwnedTable

_STORAGES = OwnedTable(Storage.__table__, newest_first=False)  # type: ignore[attr-defined]
_DESTINATIONS: Table = DatabaseStorage.__table__  # type: ignore[attr-defined]
_COPIES: Table = BackupCopy.__table__  # type: ignore[attr-defined]
_DATABASES: Table = Database.__table__  # type: ignore[attr-defined]

get = _STORAGES.get
page = _STORAGES.page
insert_storage = _STORAGES.insert
update_storage = _STORAGES.update
#: Refused by the foreign key (RESTRICT) while a database still lists it; its copies'
#: rows keep a null ``storage_id``.
delete_storage = _STORAGES.delete

#: The copies a storage still holds: deleting it would lose track of them.
HELD = (CopyStatus.COMPLETED.value, CopyStatus.DELETE_FAILED.value)

_IDS_OF = (
    select(_DESTINATIONS.c.storage_id)
    .where(_DESTINATIONS.c.database_id == bindparam("database_id"))
    .order_by(_DESTINATIONS.c.position)
)
_USERS_OF = (
    select(_DATABASES.c.name)
    .join(_DESTINATIONS, _DESTINATIONS.c.database_id == _DATABASES.c.id)
    .where(_DESTINATIONS.c.storage_id == bindparam("storage_id"))
    .order_by(_DATABASES.c.id)
)
_HELD_COPIES = select(func.count()).where(
    _COPIES.c.storage_id == bindparam("storage_id"), _COPIES.c.status.in_(HELD)
)
_CLEAR = delete(_DESTINATIONS).where(_DESTINATIONS.c.database_id == bindparam("database_id"))


def destination_ids(connection: Connection, database_id: int) -> list[int]:
    """The storages a database's backups go to, in the owner's order."""
    return list(connection.execute(_IDS_OF, {"database_id": database_id}).scalars())


def destination_ids_of(connection: Connection, database_ids: Iterable[int]) -> dict[int, list[int]]:
    """The same for several databases at once (a listing's page), by database id."""
    ids = list(database_ids)
    found: dict[int, list[int]] = {database_id: [] for database_id in ids}
    if not ids:
        return found
    query = (
        select(_DESTINATIONS.c.database_id, _DESTINATIONS.c.storage_id)
        .where(_DESTINATIONS.c.database_id.in_(ids))
        .order_by(_DESTINATIONS.c.database_id, _DESTINATIONS.c.position)
    )
    for database_id, storage_id in connection.execute(query):
        found[database_id].append(storage_id)
    return found


def set_destinations(connection: Connection, database_id: int, storage_ids: list[int]) -> None:
    """Replace a database's destinations with ``storage_ids``, in that order."""
    connection.execute(_CLEAR, {"database_id": database_id})
    if storage_ids:
        connection.execute(
            insert(_DESTINATIONS),
            [
                {"database_id": database_id, "storage_id": storage_id, "position": position}
                for position, storage_id in enumerate(storage_ids)
            ],
        )


def databases_using(connection: Connection, storage_id: int) -> list[str]:
    """Names of the databases whose backups go to the storage."""
    return list(connection.execute(_USERS_OF, {"storage_id": storage_id}).scalars())


def copies_being_written(connection: Connection, storage_id: int) -> int:
    """How many copies a backup (or a retry) is writing to the storage right now."""
    query = select(func.count()).where(
        _COPIES.c.storage_id == storage_id, _COPIES.c.status == CopyStatus.RUNNING.value
    )
    return int(connection.execute(query).scalar_one())


def held_copies(connection: Connection, storage_id: int) -> int:
    """How many backup copies the storage holds (complete, or whose deletion failed)."""
    return int(connection.execute(_HELD_COPIES, {"storage_id": storage_id}).scalar_one())
