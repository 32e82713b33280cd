"""The audit trail: entries written in batches, read newest first through filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, select

from backup_api.models import AuditEvent
from backup_api.repositories import Record

_EVENTS: Table = AuditEvent.__table__  # type: ignore[attr-defined]
_INSERT = insert(_EVENTS)


def insert_many(connection: Connection, entries: list[dict[str, Any]]) -> None:
    """Store ``entries`` (column values each) in the order given: ids follow it."""
    if entries:
        connection.execute(_INSERT, entries)


def page(
    connection: Connection,
    *,
    user_id: int | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> list[Record]:
    """Entries newest first (ids follow the order they were recorded in); ``since`` and
    ``until`` are inclusive bounds on their time."""
    statement = select(_EVENTS)
    if user_id is not None:
        statement = statement.where(_EVENTS.c.user_id == user_id)
    if action is not None:
        statement = statement.where(_EVENTS.c.action == action)
    if since is not None:
        statement = statement.where(_EVENTS.c.time >= since)
    if until is not None:
        statement = statement.where(_EVENTS.c.time <= until)
    statement = statement.order_by(_EVENTS.c.id.desc()).limit(limit).offset(offset)
    return list(connection.execute(statement))
