"""The zone a database's retention buckets are cut in: its schedule's, else UTC."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection

from backup_api.repositories import retention

UTC_ZONE = ZoneInfo("UTC")


def retention_zone(connection: Connection, database_id: int | None) -> ZoneInfo:
    """The ``timezone`` of the database's schedule when schedules exist, else UTC.

    Without a ``schedules`` table (or a schedule for this database, or a zone this system
    knows), the day of a backup is its UTC day.
    """
    name = None if database_id is None else retention.schedule_zone(connection, database_id)
    if not name:
        return UTC_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE
