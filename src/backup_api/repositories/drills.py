"""Drill records, drill schedules (one per source database at most), and what the
scheduler and the metrics read of them.

A drill slot is claimed as a backup schedule's is: one conditional update that moves
``next_run_at`` from the value read (``claim_slot``), so two processes never both run it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, update

from backup_api.models import Backup, Database, Drill, DrillSchedule, JobStatus, Schedule, User
from backup_api.repositories import Record
from backup_api.repositories.owned import OwnedTable

_DRILLS = OwnedTable(Drill.__table__, newest_first=True)  # type: ignore[attr-defined]
_TABLE = _DRILLS.table
_SCHEDULES: Table = DrillSchedule.__table__  # type: ignore[attr-defined]
_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]
_DATABASES: Table = Database.__table__  # type: ignore[attr-defined]
_USERS: Table = User.__table__  # type: ignore[attr-defined]

get = _DRILLS.get
page = _DRILLS.page
insert_drill = _DRILLS.insert
delete_of_user = _DRILLS.delete_of_user

_SCHEDULE_OF = select(_SCHEDULES).where(_SCHEDULES.c.database_id == bindparam("database_id"))
_INSERT_SCHEDULE = insert(_SCHEDULES).returning(*_SCHEDULES.c)
_DELETE_SCHEDULE = delete(_SCHEDULES).where(_SCHEDULES.c.database_id == bindparam("database_id"))
_MINE = _SCHEDULES.c.id == bindparam("schedule_id")
_DUE = (
    select(
        _SCHEDULES.c.id,
        _SCHEDULES.c.database_id,
        _SCHEDULES.c.target_database_id,
        _SCHEDULES.c.cron,
        _SCHEDULES.c.timezone,
        _SCHEDULES.c.next_run_at,
        _USERS.c.id.label("owner_id"),
        _USERS.c.role.label("owner_role"),
    )
    .join(_DATABASES, _DATABASES.c.id == _SCHEDULES.c.database_id)
    .join(_USERS, _USERS.c.id == _DATABASES.c.user_id)
    .where(_SCHEDULES.c.enabled.is_(True), _SCHEDULES.c.next_run_at <= bindparam("now"))
    .order_by(_SCHEDULES.c.id)
)
_NEXT_WAKE = select(func.min(_SCHEDULES.c.next_run_at)).where(_SCHEDULES.c.enabled.is_(True))
_CLAIM_SLOT = (
    update(_SCHEDULES)
    .where(_MINE, _SCHEDULES.c.next_run_at == bindparam("mark"), _SCHEDULES.c.enabled.is_(True))
    .values(next_run_at=bindparam("next_run_at"))
)
_SKIPPED = update(_SCHEDULES).where(_MINE).values(skipped_runs=_SCHEDULES.c.skipped_runs + 1)
_NEWEST_COMPLETED = (
    select(_BACKUPS)
    .where(
        _BACKUPS.c.database_id == bindparam("database_id"),
        _BACKUPS.c.status == JobStatus.COMPLETED.value,
    )
    .order_by(_BACKUPS.c.id.desc())
    .limit(1)
)
_PENDING_ON = select(func.count()).where(
    _TABLE.c.status == JobStatus.PENDING.value,
    or_(
        _TABLE.c.target_database_id == bindparam("database_id"),
        _TABLE.c.source_database_id == bindparam("database_id"),
    ),
)
_LAST_SUCCESS = (
    select(_TABLE.c.source_database_id, func.max(_TABLE.c.finished_at))
    .where(
        _TABLE.c.status == JobStatus.COMPLETED.value,
        _TABLE.c.source_database_id.is_not(None),
    )
    .group_by(_TABLE.c.source_database_id)
)


_IDS_OF_USER = select(_TABLE.c.id).where(_TABLE.c.user_id == bindparam("user_id"))


def ids_of_user(connection: Connection, user_id: int) -> list[int]:
    return list(connection.execute(_IDS_OF_USER, {"user_id": user_id}).scalars())


def update_drill(connection: Connection, drill_id: int, values: dict[str, Any]) -> None:
    connection.execute(update(_TABLE).where(_TABLE.c.id == drill_id).values(**values))


def pending_of_user(connection: Connection, user_id: int) -> int:
    query = select(func.count()).where(
        _TABLE.c.user_id == user_id, _TABLE.c.status == JobStatus.PENDING.value
    )
    return int(connection.execute(query).scalar_one())


def pending_readers(connection: Connection, backup_id: int) -> int:
    """Pending drills that read this backup."""
    query = select(func.count()).where(
        _TABLE.c.backup_id == backup_id, _TABLE.c.status == JobStatus.PENDING.value
    )
    return int(connection.execute(query).scalar_one())


def pending_on(connection: Connection, database_id: int) -> int:
    """Pending drills that restore into ``database_id`` or drill one of its backups."""
    return int(connection.execute(_PENDING_ON, {"database_id": database_id}).scalar_one())


def newest_completed_backup(connection: Connection, database_id: int) -> Record | None:
    return connection.execute(_NEWEST_COMPLETED, {"database_id": database_id}).first()


def mark_backup(connection: Connection, drill: Record) -> None:
    """Keep the drill's outcome on its backup's row (``last_drill``)."""
    if drill.backup_id is None:
        return
    values = {
        "last_drill_id": drill.id,
        "last_drill_status": drill.status,
        "last_drill_finished_at": drill.finished_at,
    }
    statement = update(_BACKUPS).where(
        _BACKUPS.c.id == drill.backup_id,
        # An older drill that ends late never hides a newer one's outcome.
        or_(_BACKUPS.c.last_drill_id.is_(None), _BACKUPS.c.last_drill_id <= drill.id),
    )
    connection.execute(statement.values(**values))


def last_drill_success_by_database(connection: Connection) -> dict[int, datetime]:
    """When each source database's newest passed drill ended (UTC): what the metric
    ``backup_api_last_drill_success_timestamp_seconds`` reports per database."""
    result: dict[int, datetime] = {}
    for database_id, finished in connection.execute(_LAST_SUCCESS):
        if finished is not None:
            # SQLite hands datetimes back naive; they were stored as UTC.
            aware = finished.replace(tzinfo=UTC) if finished.tzinfo is None else finished
            result[int(database_id)] = aware.astimezone(UTC)
    return result


# --------------------------------------------------------------------------- schedules


def schedule_of(connection: Connection, database_id: int) -> Record | None:
    return connection.execute(_SCHEDULE_OF, {"database_id": database_id}).first()


def save_schedule(connection: Connection, database_id: int, values: dict[str, Any]) -> Record:
    """Create or change the database's drill schedule; the row as saved."""
    statement = (
        update(_SCHEDULES)
        .where(_SCHEDULES.c.database_id == database_id)
        .values(**values)
        .returning(*_SCHEDULES.c)
    )
    saved = connection.execute(statement).first()
    if saved is not None:
        return saved
    row = {
        "skipped_runs": 0,
        "created_at": values["updated_at"],
        **values,
        "database_id": database_id,
    }
    return connection.execute(_INSERT_SCHEDULE, row).one()


def delete_schedule(connection: Connection, database_id: int) -> bool:
    return connection.execute(_DELETE_SCHEDULE, {"database_id": database_id}).rowcount > 0


def due(connection: Connection, now: datetime) -> list[Record]:
    """Each enabled drill schedule whose slot is due, and who owns its database."""
    return list(connection.execute(_DUE, {"now": now}))


def next_wake(connection: Connection) -> datetime | None:
    value: datetime | None = connection.execute(_NEXT_WAKE).scalar_one()
    return value


def claim_slot(
    connection: Connection, schedule_id: int, mark: Any, next_run_at: datetime | None
) -> bool:
    parameters = {"schedule_id": schedule_id, "mark": mark, "next_run_at": next_run_at}
    return connection.execute(_CLAIM_SLOT, parameters).rowcount == 1


def count_skipped(connection: Connection, schedule_id: int) -> None:
    connection.execute(_SKIPPED, {"schedule_id": schedule_id})


def record_run(connection: Connection, schedule_id: int, values: dict[str, Any]) -> None:
    connection.execute(update(_SCHEDULES).where(_SCHEDULES.c.id == schedule_id).values(**values))


def same_named(connection: Connection, db_type: str, port: str, db_name: str) -> list[Record]:
    """Every registered database (anyone's) of this type, port and database name, with
    whether it is backed up (it has backups or a backup schedule) as ``backed_up``."""
    schedules: Table = Schedule.__table__  # type: ignore[attr-defined]
    has_backups = (
        select(func.count()).where(_BACKUPS.c.database_id == _DATABASES.c.id).scalar_subquery()
    )
    has_schedule = (
        select(func.count()).where(schedules.c.database_id == _DATABASES.c.id).scalar_subquery()
    )
    query = select(
        _DATABASES.c.id,
        _DATABASES.c.host,
        _DATABASES.c.scratch,
        ((has_backups + has_schedule) > 0).label("backed_up"),
    ).where(
        _DATABASES.c.type == db_type,
        _DATABASES.c.port == port,
        _DATABASES.c.db_name == db_name,
    )
    return list(connection.execute(query))
