"""Retention policies, and what a sweep reads: a database's backups, its schedule's zone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, inspect, select, text, update

from backup_api.models import Backup, RetentionPolicy, utcnow
from backup_api.repositories import Record

_POLICIES: Table = RetentionPolicy.__table__  # type: ignore[attr-defined]
_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]

_POLICY = select(_POLICIES).where(_POLICIES.c.database_id == bindparam("database_id"))
_INSERT = insert(_POLICIES).returning(*_POLICIES.c)
_DELETE = delete(_POLICIES).where(_POLICIES.c.database_id == bindparam("database_id"))
_HISTORY_COLUMNS = (
    _BACKUPS.c.id,
    _BACKUPS.c.status,
    _BACKUPS.c.created_at,
    _BACKUPS.c.pinned,
    _BACKUPS.c.started_at,
)
_HISTORY = select(*_HISTORY_COLUMNS).where(_BACKUPS.c.database_id == bindparam("database_id"))
_HISTORY_ORPHANS = select(*_HISTORY_COLUMNS).where(_BACKUPS.c.database_id.is_(None))
_DATABASE_IDS = select(_BACKUPS.c.database_id).distinct()
# By table name: retention does not depend on the schedules' code (nor on their existence).
_SCHEDULE_ZONE = text("SELECT timezone FROM schedules WHERE database_id = :database_id")


def get_policy(connection: Connection, database_id: int) -> Record | None:
    return connection.execute(_POLICY, {"database_id": database_id}).first()


def save_policy(connection: Connection, database_id: int, values: dict[str, Any]) -> Record:
    """Create or replace the database's policy with ``values`` (its counts)."""
    now = utcnow()
    statement = (
        update(_POLICIES)
        .where(_POLICIES.c.database_id == database_id)
        .values(**values, updated_at=now)
        .returning(*_POLICIES.c)
    )
    saved = connection.execute(statement).first()
    if saved is not None:
        return saved
    row = {**values, "database_id": database_id, "created_at": now, "updated_at": now}
    return connection.execute(_INSERT, row).one()


def delete_policy(connection: Connection, database_id: int) -> bool:
    """Whether there was a policy to delete."""
    return connection.execute(_DELETE, {"database_id": database_id}).rowcount > 0


def history(connection: Connection, database_id: int | None) -> list[Record]:
    """``id``, ``status``, ``created_at``, ``pinned`` and ``started_at`` of each backup of
    ``database_id`` (``None``: of the databases deleted since)."""
    if database_id is None:
        return list(connection.execute(_HISTORY_ORPHANS))
    return list(connection.execute(_HISTORY, {"database_id": database_id}))


def database_ids(connection: Connection) -> list[int | None]:
    """Every ``database_id`` the backups name (``None`` for those of deleted databases)."""
    return list(connection.execute(_DATABASE_IDS).scalars())


def schedule_zone(connection: Connection, database_id: int) -> str | None:
    """The ``timezone`` of the database's schedule, if schedules exist and it has one."""
    if not inspect(connection).has_table("schedules"):
        return None
    name = connection.execute(_SCHEDULE_ZONE, {"database_id": database_id}).scalar()
    return str(name) if name else None
