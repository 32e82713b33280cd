"""The zone a database's retention buckets are cut in: its schedule's, else UTC."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, inspect, text

UTC_ZONE = ZoneInfo("UTC")


def retention_zone(connection: Connection, database_id: int | None) -> ZoneInfo:
    """The ``timezone`` of the database's schedule when schedules exist, else UTC.

    Read by table name so that retention does not depend on the schedules' code: without
    a ``schedules`` table (or a schedule for this database, or a zone this system knows),
    the day of a backup is its UTC day.
    """
    if database_id is None or not inspect(connection).has_table("schedules"):
        return UTC_ZONE
    name = connection.execute(
        text("SELECT timezone FROM schedules WHERE database_id = :id"), {"id": database_id}
    ).scalar()
    if not name:
        return UTC_ZONE
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE
