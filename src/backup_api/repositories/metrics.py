"""What ``/metrics`` and the overdue watch read: job outcomes grouped, each database's
last success and last ended backup, the enabled schedules with their databases.

Every statement is a GROUP BY over whole tables (or one row per database or schedule):
a scrape costs a few index-backed scans, whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Table,
    and_,
    case,
    cast,
    func,
    select,
)

from backup_api.models import Backup, Database, JobStatus, Restore, Schedule
from backup_api.repositories import Record

_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]
_RESTORES: Table = Restore.__table__  # type: ignore[attr-defined]
_DATABASES: Table = Database.__table__  # type: ignore[attr-defined]
_SCHEDULES: Table = Schedule.__table__  # type: ignore[attr-defined]

#: Outcomes that end a job: a pending record is neither counted nor timed.
ENDED = (JobStatus.COMPLETED.value, JobStatus.FAILED.value)

_BACKUP_OUTCOMES = (
    select(
        _BACKUPS.c.db_type,
        _BACKUPS.c.trigger,
        _BACKUPS.c.status,
        func.count().label("jobs"),
        func.coalesce(func.sum(_BACKUPS.c.dump_size), 0).label("dumped_bytes"),
    )
    .where(_BACKUPS.c.status.in_(ENDED))
    .group_by(_BACKUPS.c.db_type, _BACKUPS.c.trigger, _BACKUPS.c.status)
)

_RESTORE_OUTCOMES = (
    # The restored backup's engine: null for a restore whose backup was deleted since.
    select(_BACKUPS.c.db_type, _RESTORES.c.status, func.count().label("jobs"))
    .select_from(_RESTORES.outerjoin(_BACKUPS, _BACKUPS.c.id == _RESTORES.c.backup_id))
    .where(_RESTORES.c.status.in_(ENDED))
    .group_by(_BACKUPS.c.db_type, _RESTORES.c.status)
)

_LAST_SUCCESS = (
    select(_BACKUPS.c.database_id, func.max(_BACKUPS.c.finished_at).label("finished_at"))
    .where(_BACKUPS.c.status == JobStatus.COMPLETED.value, _BACKUPS.c.database_id.is_not(None))
    .group_by(_BACKUPS.c.database_id)
    .subquery("last_success")
)
# The newest ended backup of each database (ids grow with creation).
_LAST_ENDED_ID = (
    select(_BACKUPS.c.database_id, func.max(_BACKUPS.c.id).label("backup_id"))
    .where(_BACKUPS.c.status.in_(ENDED), _BACKUPS.c.database_id.is_not(None))
    .group_by(_BACKUPS.c.database_id)
    .subquery("last_ended_id")
)
_LAST_ENDED = _BACKUPS.alias("last_ended")

_DATABASE_STATES = (
    select(
        _DATABASES.c.id,
        _DATABASES.c.name,
        _DATABASES.c.type,
        _DATABASES.c.user_id,
        _LAST_SUCCESS.c.finished_at.label("last_success_at"),
        _LAST_ENDED.c.status.label("last_status"),
    )
    .select_from(
        _DATABASES.outerjoin(_LAST_SUCCESS, _LAST_SUCCESS.c.database_id == _DATABASES.c.id)
        .outerjoin(_LAST_ENDED_ID, _LAST_ENDED_ID.c.database_id == _DATABASES.c.id)
        .outerjoin(_LAST_ENDED, _LAST_ENDED.c.id == _LAST_ENDED_ID.c.backup_id)
    )
    .order_by(_DATABASES.c.id)
)

_SCHEDULED = (
    select(
        _SCHEDULES.c.id.label("schedule_id"),
        _SCHEDULES.c.cron,
        _SCHEDULES.c.timezone,
        _SCHEDULES.c.created_at.label("schedule_created_at"),
        _DATABASES.c.id.label("database_id"),
        _DATABASES.c.name.label("database_name"),
        _DATABASES.c.type.label("database_type"),
        _DATABASES.c.user_id,
        _LAST_SUCCESS.c.finished_at.label("last_success_at"),
    )
    .select_from(
        _SCHEDULES.join(_DATABASES, _DATABASES.c.id == _SCHEDULES.c.database_id).outerjoin(
            _LAST_SUCCESS, _LAST_SUCCESS.c.database_id == _DATABASES.c.id
        )
    )
    .where(_SCHEDULES.c.enabled.is_(True))
    .order_by(_SCHEDULES.c.id)
)


def backup_outcomes(connection: Connection) -> list[Record]:
    """Ended backups by (db_type, trigger, status): their number (``jobs``) and dumped bytes."""
    return list(connection.execute(_BACKUP_OUTCOMES))


def restore_outcomes(connection: Connection) -> list[Record]:
    """Ended restores by (db_type, null when the backup is gone, status): their number
    (``jobs``)."""
    return list(connection.execute(_RESTORE_OUTCOMES))


def _seconds_between(connection: Connection, start: Any, end: Any) -> ColumnElement[Any]:
    if connection.dialect.name == "sqlite":
        # SQLite keeps datetimes as text; julianday reads that text as days.
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)


def _histogram(
    connection: Connection,
    value: ColumnElement[Any],
    bounds: Sequence[float],
    *conditions: ColumnElement[bool],
) -> list[Record]:
    """Completed backups by db_type: per upper bound, how many have ``value`` at most
    that (cumulative, as Prometheus buckets are), then their number (``total``) and the
    sum of ``value``."""
    columns = [
        func.sum(case((value <= bound, 1), else_=0)).label(f"le_{index}")
        for index, bound in enumerate(bounds)
    ]
    statement = (
        select(
            _BACKUPS.c.db_type,
            *columns,
            func.count().label("total"),
            func.coalesce(func.sum(value), 0).label("sum"),
        )
        .where(and_(_BACKUPS.c.status == JobStatus.COMPLETED.value, *conditions))
        .group_by(_BACKUPS.c.db_type)
    )
    return list(connection.execute(statement))


def duration_histogram(connection: Connection, bounds: Sequence[float]) -> list[Record]:
    """Completed backups' durations (seconds, start to end) by db_type."""
    duration = _seconds_between(connection, _BACKUPS.c.started_at, _BACKUPS.c.finished_at)
    return _histogram(
        connection,
        duration,
        bounds,
        # Imported backups were not run here: they have no start.
        _BACKUPS.c.started_at.is_not(None),
        _BACKUPS.c.finished_at.is_not(None),
    )


def size_histogram(connection: Connection, bounds: Sequence[float]) -> list[Record]:
    """Completed backups' stored sizes (bytes) by db_type."""
    return _histogram(connection, _BACKUPS.c.size, bounds)


def database_states(connection: Connection) -> list[Record]:
    """Every registered database with its owner, its last success's end and the status of
    its newest ended backup (both null when there is none)."""
    return list(connection.execute(_DATABASE_STATES))


def scheduled(connection: Connection) -> list[Record]:
    """Every enabled schedule with its database, owner and last success's end."""
    return list(connection.execute(_SCHEDULED))
