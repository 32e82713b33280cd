"""Schedules (one per database at most), what the scheduler finds due, and its claims.

A slot or a retry is claimed by one conditional update (``claim_slot``, ``claim_retry``):
it changes the row only if it still holds the value the caller read, so of two processes
that read the same due slot, one claims it and the other's update changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from backup_api.models import Backup, Database, JobStatus, Schedule, User
from backup_api.repositories import Record

_SCHEDULES: Table = Schedule.__table__  # type: ignore[attr-defined]
_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]
_DATABASES: Table = Database.__table__  # type: ignore[attr-defined]
_USERS: Table = User.__table__  # type: ignore[attr-defined]

_OF_DATABASE = select(_SCHEDULES).where(_SCHEDULES.c.database_id == bindparam("database_id"))
_INSERT = insert(_SCHEDULES).returning(*_SCHEDULES.c)
_DELETE = delete(_SCHEDULES).where(_SCHEDULES.c.database_id == bindparam("database_id"))
_MINE = _SCHEDULES.c.id == bindparam("schedule_id")

# Each enabled schedule with a slot or a retry due, and who owns its database (the
# backup is started as them).
_DUE = (
    select(
        _SCHEDULES.c.id,
        _SCHEDULES.c.database_id,
        _SCHEDULES.c.cron,
        _SCHEDULES.c.timezone,
        _SCHEDULES.c.next_run_at,
        _SCHEDULES.c.retry_at,
        _USERS.c.id.label("owner_id"),
        _USERS.c.role.label("owner_role"),
    )
    .join(_DATABASES, _DATABASES.c.id == _SCHEDULES.c.database_id)
    .join(_USERS, _USERS.c.id == _DATABASES.c.user_id)
    .where(
        _SCHEDULES.c.enabled.is_(True),
        (_SCHEDULES.c.next_run_at <= bindparam("now"))
        | (_SCHEDULES.c.retry_at <= bindparam("now")),
    )
    .order_by(_SCHEDULES.c.id)
)
_FAILED_WITHOUT_RETRY = (
    select(_SCHEDULES.c.id, _SCHEDULES.c.last_backup_id, _SCHEDULES.c.retry_attempt)
    .join(_BACKUPS, _BACKUPS.c.id == _SCHEDULES.c.last_backup_id)
    .where(
        _SCHEDULES.c.enabled.is_(True),
        _SCHEDULES.c.retry_at.is_(None),
        _SCHEDULES.c.retry_attempt < bindparam("retries"),
        _BACKUPS.c.status == JobStatus.FAILED.value,
        # A backup with a checksum made its archive, and only some destinations failed:
        # their copies are sent again from a complete one (copy retries), not re-dumped.
        _BACKUPS.c.checksum.is_(None),
    )
)
_PLAN_RETRY = (
    update(_SCHEDULES)
    .where(
        _MINE,
        _SCHEDULES.c.last_backup_id == bindparam("backup_id"),
        _SCHEDULES.c.retry_attempt == bindparam("attempt"),
        _SCHEDULES.c.retry_at.is_(None),
    )
    .values(retry_at=bindparam("retry_at"))
)
_NEXT_WAKE = select(func.min(_SCHEDULES.c.next_run_at), func.min(_SCHEDULES.c.retry_at)).where(
    _SCHEDULES.c.enabled.is_(True)
)
_CLAIM_SLOT = (
    update(_SCHEDULES)
    .where(_MINE, _SCHEDULES.c.next_run_at == bindparam("mark"), _SCHEDULES.c.enabled.is_(True))
    .values(next_run_at=bindparam("next_run_at"))
)
_CLAIM_RETRY = (
    update(_SCHEDULES)
    .where(_MINE, _SCHEDULES.c.retry_at == bindparam("mark"), _SCHEDULES.c.enabled.is_(True))
    .values(retry_at=None, retry_attempt=_SCHEDULES.c.retry_attempt + 1)
)
_SKIPPED = update(_SCHEDULES).where(_MINE).values(skipped_runs=_SCHEDULES.c.skipped_runs + 1)


# --------------------------------------------------------------------------- the API's


def of_database(connection: Connection, database_id: int) -> Record | None:
    return connection.execute(_OF_DATABASE, {"database_id": database_id}).first()


def save(connection: Connection, database_id: int, values: dict[str, Any]) -> Record:
    """Create or change the database's schedule with ``values``; the row as saved."""
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
        "retry_attempt": 0,
        "created_at": values["updated_at"],
        **values,
        "database_id": database_id,
    }
    return connection.execute(_INSERT, row).one()


def delete_of_database(connection: Connection, database_id: int) -> bool:
    """Whether there was a schedule to delete."""
    return connection.execute(_DELETE, {"database_id": database_id}).rowcount > 0


# --------------------------------------------------------------------------- the scheduler's


def due(connection: Connection, now: datetime) -> list[Record]:
    """``id``, ``database_id``, ``cron``, ``timezone``, ``next_run_at``, ``retry_at``,
    ``owner_id`` and ``owner_role`` of each enabled schedule with a slot or a retry due."""
    return list(connection.execute(_DUE, {"now": now}))


def next_wake(connection: Connection) -> tuple[datetime | None, datetime | None]:
    """The earliest slot and the earliest retry of the enabled schedules."""
    slot, retry = connection.execute(_NEXT_WAKE).one()
    return slot, retry


def failed_without_retry(connection: Connection, retries: int) -> list[Record]:
    """``id``, ``last_backup_id`` and ``retry_attempt`` of each enabled schedule whose last
    backup failed, with fewer than ``retries`` retries made and none planned."""
    return list(connection.execute(_FAILED_WITHOUT_RETRY, {"retries": retries}))


def plan_retry(
    connection: Connection, schedule_id: int, backup_id: int, attempt: int, retry_at: datetime
) -> bool:
    """Plan a retry at ``retry_at``, unless the schedule moved on since it was read."""
    parameters = {
        "schedule_id": schedule_id,
        "backup_id": backup_id,
        "attempt": attempt,
        "retry_at": retry_at,
    }
    return connection.execute(_PLAN_RETRY, parameters).rowcount == 1


def claim_slot(
    connection: Connection, schedule_id: int, mark: Any, next_run_at: datetime | None
) -> bool:
    """Move the slot ``mark`` (as read) to ``next_run_at``; False if it is no longer there."""
    parameters = {"schedule_id": schedule_id, "mark": mark, "next_run_at": next_run_at}
    return connection.execute(_CLAIM_SLOT, parameters).rowcount == 1


def claim_retry(connection: Connection, schedule_id: int, mark: Any) -> bool:
    """Take the retry planned at ``mark`` (as read); False if it is no longer there."""
    parameters = {"schedule_id": schedule_id, "mark": mark}
    return connection.execute(_CLAIM_RETRY, parameters).rowcount == 1


def count_skipped(connection: Connection, schedule_id: int) -> None:
    connection.execute(_SKIPPED, {"schedule_id": schedule_id})


def record_run(connection: Connection, schedule_id: int, values: dict[str, Any]) -> None:
    """What a claimed slot or retry started (``last_run_at``, ``last_backup_id``, ...)."""
    connection.execute(update(_SCHEDULES).where(_SCHEDULES.c.id == schedule_id).values(**values))
