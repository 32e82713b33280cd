"""Registered databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update

from backup_api.models import Database
from backup_api.repositories import Record

_DATABASES: Table = Database.__table__  # type: ignore[attr-defined]

_BY_ID = select(_DATABASES).where(_DATABASES.c.id == bindparam("database_id"))
_PAGE = select(_DATABASES).order_by(_DATABASES.c.id)
_PAGES = {
    own: (_PAGE.where(_DATABASES.c.user_id == bindparam("user_id")) if own else _PAGE)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
    for own in (False, True)
}
_INSERT = insert(_DATABASES).returning(*_DATABASES.c)
_DELETE = delete(_DATABASES).where(_DATABASES.c.id == bindparam("database_id"))


def get(connection: Connection, database_id: int) -> Record | None:
    return connection.execute(_BY_ID, {"database_id": database_id}).first()


def page(connection: Connection, owner_id: int | None, limit: int, offset: int) -> list[Record]:
    """Oldest first; ``owner_id``'s only, or everyone's when it is ``None``."""
    parameters = {"user_id": owner_id, "limit": limit, "offset": offset}
    return list(connection.execute(_PAGES[owner_id is not None], parameters))


def insert_database(connection: Connection, values: dict[str, Any]) -> Record:
    return connection.execute(_INSERT, values).one()


def update_database(
    connection: Connection, database_id: int, values: dict[str, Any]
) -> Record | None:
    """The record once changed, or ``None`` if it no longer exists."""
    statement = update(_DATABASES).where(_DATABASES.c.id == database_id).values(**values)
    return connection.execute(statement.returning(*_DATABASES.c)).first()


def delete_database(connection: Connection, database_id: int) -> None:
    """Its backups stay: their ``database_id`` becomes null through the foreign key."""
    connection.execute(_DELETE, {"database_id": database_id})


def delete_of_user(connection: Connection, user_id: int) -> None:
    connection.execute(delete(_DATABASES).where(_DATABASES.c.user_id == user_id))
