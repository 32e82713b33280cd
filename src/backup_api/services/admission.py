"""Whether a user may queue one more job: the per-user cap of pending jobs.

The row checks run inside the unit of work that inserts the job, so that two concurrent
requests cannot both take the last place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, ScalarSelect, Table, bindparam, func, select

from backup_api.config import Settings
from backup_api.exceptions import TooManyRequests
from backup_api.models import Backup, JobStatus, Restore

_BACKUPS: Table = Backup.__table__  # type: ignore[attr-defined]
_RESTORES: Table = Restore.__table__  # type: ignore[attr-defined]


def _pending_of(table: Table) -> ScalarSelect[Any]:
    return (
        select(func.count())
        .select_from(table)
        .where(table.c.user_id == bindparam("user_id"), table.c.status == JobStatus.PENDING.value)
        .scalar_subquery()
    )


# Every kind of job counts: restores (and later drills) queue as backups do.
_COUNT_PENDING_JOBS = select(_pending_of(_BACKUPS) + _pending_of(_RESTORES))


def ensure_job_slot(connection: Connection, settings: Settings, user_id: int) -> None:
    """429 when the user already has as many pending backups and restores as allowed."""
    active = connection.execute(_COUNT_PENDING_JOBS, {"user_id": user_id}).scalar_one()
    if active >= settings.max_active_backups_per_user:
        raise TooManyRequests(
            "Trop de sauvegardes et restaurations en cours pour cet utilisateur, "
            "réessayez plus tard",
            retry_after=30,
        )
