"""What the dashboard's overview reads in one unit of work: each database's newest backup,
its newest completed one, its schedule, and the sizes of its recent completed backups."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, case, func, select

from backup_api.models import Backup, Database, JobStatus, Schedule
from backup_api.repositories import Record

_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]
_DATABASES: Table = Database.__table__  # type: ignore[attr-defined]
_SCHEDULES: Table = Schedule.__table__  # type: ignore[attr-defined]

#: How many completed backups each database's size chart shows.
CHART_POINTS = 30

_COMPLETED = _BACKUPS.c.status == JobStatus.COMPLETED.value


def _databases(owner_id: int | None) -> Any:
    statement = select(
        _DATABASES.c.id,
        _DATABASES.c.name,
        _DATABASES.c.type,
        _DATABASES.c.host,
        _DATABASES.c.db_name,
        _DATABASES.c.user_id,
    ).order_by(_DATABASES.c.id)
    if owner_id is not None:
        statement = statement.where(_DATABASES.c.user_id == owner_id)
    return statement


_ALL_DATABASES = _databases(None)
_OWN_DATABASES = _databases(None).where(_DATABASES.c.user_id == bindparam("owner_id"))


def _newest(owner_id: int | None) -> Any:
    """Per database, the newest backup's id and the newest completed one's."""
    statement = select(
        _BACKUPS.c.database_id,
        func.max(_BACKUPS.c.id).label("newest_id"),
        func.max(case((_COMPLETED, _BACKUPS.c.id))).label("completed_id"),
    ).where(_BACKUPS.c.database_id.is_not(None))
    if owner_id is not None:
        statement = statement.where(_BACKUPS.c.user_id == owner_id)
    return statement.group_by(_BACKUPS.c.database_id)


def _recent_sizes(owner_id: int | None) -> Any:
    ranked = select(
        _BACKUPS.c.database_id,
        _BACKUPS.c.created_at,
        _BACKUPS.c.size,
        func.row_number()
        .over(partition_by=_BACKUPS.c.database_id, order_by=_BACKUPS.c.id.desc())
        .label("rank"),
    ).where(and_(_COMPLETED, _BACKUPS.c.database_id.is_not(None)))
    if owner_id is not None:
        ranked = ranked.where(_BACKUPS.c.user_id == owner_id)
    subquery = ranked.subquery()
    return (
        select(subquery.c.database_id, subquery.c.created_at, subquery.c.size)
        .where(subquery.c.rank <= CHART_POINTS)
        .order_by(subquery.c.database_id, subquery.c.created_at)
    )


_BACKUP_COLUMNS = (
    _BACKUPS.c.id,
    _BACKUPS.c.database_id,
    _BACKUPS.c.status,
    _BACKUPS.c.size,
    _BACKUPS.c.created_at,
    _BACKUPS.c.started_at,
    _BACKUPS.c.finished_at,
    _BACKUPS.c.trigger,
)


class Overview:
    """The rows the overview page is drawn from, by database id."""

    def __init__(self) -> None:
        self.databases: list[Record] = []
        self.newest: dict[int, Record] = {}
        self.completed: dict[int, Record] = {}
        self.schedules: dict[int, Record] = {}
        self.sizes: dict[int, list[tuple[Any, int]]] = defaultdict(list)


def overview(connection: Connection, owner_id: int | None) -> Overview:
    """Everything about ``owner_id``'s databases (everyone's when None, for an admin)."""
    result = Overview()
    if owner_id is None:
        result.databases = list(connection.execute(_ALL_DATABASES))
    else:
        result.databases = list(connection.execute(_OWN_DATABASES, {"owner_id": owner_id}))
    if not result.databases:
        return result
    newest_rows = list(connection.execute(_newest(owner_id)))
    wanted = {row.newest_id for row in newest_rows} | {
        row.completed_id for row in newest_rows if row.completed_id is not None
    }
    backups = {
        row.id: row
        for row in connection.execute(
            select(*_BACKUP_COLUMNS).where(_BACKUPS.c.id.in_(sorted(wanted)))
        )
    }
    for row in newest_rows:
        result.newest[row.database_id] = backups[row.newest_id]
        if row.completed_id is not None:
            result.completed[row.database_id] = backups[row.completed_id]
    schedules = select(_SCHEDULES)
    if owner_id is not None:
        schedules = schedules.where(
            _SCHEDULES.c.database_id.in_(
                select(_DATABASES.c.id).where(_DATABASES.c.user_id == owner_id)
            )
        )
    for schedule in connection.execute(schedules):
        result.schedules[schedule.database_id] = schedule
    for row in connection.execute(_recent_sizes(owner_id)):
        result.sizes[row.database_id].append((row.created_at, row.size))
    return result
