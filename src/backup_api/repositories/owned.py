"""The statements every table of user-owned records shares (databases, backups, restores),
built once per table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update

from backup_api.repositories import Record


class OwnedTable:
    """Read, page, insert, change and delete the records of ``table``, whose ``user_id``
    column names each record's owner."""

    def __init__(self, table: Table, *, newest_first: bool) -> None:
        self.table = table
        ordered = select(table).order_by(table.c.id.desc() if newest_first else table.c.id)
        self._by_id = select(table).where(table.c.id == bindparam("record_id"))
        self._pages = {
            own: (ordered.where(table.c.user_id == bindparam("user_id")) if own else ordered)
            .limit(bindparam("limit"))
            .offset(bindparam("offset"))
            for own in (False, True)
        }
        self._insert = insert(table).returning(*table.c)
        self._delete = delete(table).where(table.c.id == bindparam("record_id"))
        self._delete_of_user = delete(table).where(table.c.user_id == bindparam("user_id"))

    def get(self, connection: Connection, record_id: int) -> Record | None:
        return connection.execute(self._by_id, {"record_id": record_id}).first()

    def page(
        self, connection: Connection, owner_id: int | None, limit: int, offset: int
    ) -> list[Record]:
        """``owner_id``'s records only, or everyone's when it is ``None``."""
        parameters = {"user_id": owner_id, "limit": limit, "offset": offset}
        return list(connection.execute(self._pages[owner_id is not None], parameters))

    def insert(self, connection: Connection, values: dict[str, Any]) -> Record:
        return connection.execute(self._insert, values).one()

    def update(
        self, connection: Connection, record_id: int, values: dict[str, Any]
    ) -> Record | None:
        """The record once changed, or ``None`` if it no longer exists."""
        table = self.table
        statement = update(table).where(table.c.id == record_id).values(**values)
        return connection.execute(statement.returning(*table.c)).first()

    def delete(self, connection: Connection, record_id: int) -> None:
        connection.execute(self._delete, {"record_id": record_id})

    def delete_of_user(self, connection: Connection, user_id: int) -> None:
        connection.execute(self._delete_of_user, {"user_id": user_id})
