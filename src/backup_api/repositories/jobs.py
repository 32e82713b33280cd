"""What backup and restore records share as jobs: their status updates, the pending ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, ScalarSelect, Table, bindparam, func, select, update

from backup_api.models import Backup, Drill, JobStatus, Restore
from backup_api.repositories import Record

JobModel = type[Backup] | type[Restore] | type[Drill]

_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]
_RESTORES: Table = Restore.__table__  # type: ignore[attr-defined]
_DRILLS: Table = Drill.__table__  # type: ignore[attr-defined]


def _pending_of(table: Table) -> ScalarSelect[Any]:
    return (
        select(func.count())
        .select_from(table)
        .where(table.c.user_id == bindparam("user_id"), table.c.status == JobStatus.PENDING.value)
        .scalar_subquery()
    )


# Every kind of job counts: restores (and later drills) queue as backups do.
_COUNT_PENDING = select(_pending_of(_BACKUPS) + _pending_of(_RESTORES) + _pending_of(_DRILLS))


def _table(model: JobModel) -> Table:
    table: Table = model.__table__  # type: ignore[union-attr]
    return table


def pending_of_user(connection: Connection, user_id: int) -> int:
    """The user's pending backups, restores and drills."""
    return int(connection.execute(_COUNT_PENDING, {"user_id": user_id}).scalar_one())


def update_job(
    connection: Connection, model: JobModel, record_id: int, values: dict[str, Any]
) -> None:
    """Apply ``values`` to one record (one deleted meanwhile is left alone)."""
    table = _table(model)
    connection.execute(update(table).where(table.c.id == record_id).values(**values))


def pending(connection: Connection, model: JobModel) -> list[Record]:
    """The pending records of a kind, oldest first."""
    table = _table(model)
    query = select(table).where(table.c.status == JobStatus.PENDING.value).order_by(table.c.id)
    return list(connection.execute(query))
