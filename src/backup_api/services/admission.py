"""Whether a user may queue one more job: the per-user cap of pending jobs, the storage
quota of the account and the free-space reserve of the backup root.

The row checks run inside the unit of work that inserts the job, so that two concurrent
requests cannot both take the last place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, ScalarSelect, Table, bindparam, func, select

from backup_api.config import Settings
from backup_api.diskspace import below_reserve
from backup_api.exceptions import InsufficientStorage, TooManyRequests
from backup_api.models import Backup, JobStatus, Restore
from backup_api.storage.base import Storage

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
_STORED_BYTES = select(func.coalesce(func.sum(_BACKUPS.c.size), 0)).where(
    _BACKUPS.c.user_id == bindparam("user_id"),
    _BACKUPS.c.status == JobStatus.COMPLETED.value,
)


def ensure_job_slot(connection: Connection, settings: Settings, user_id: int) -> None:
    """429 when the user already has as many pending backups and restores as allowed."""
    active = connection.execute(_COUNT_PENDING_JOBS, {"user_id": user_id}).scalar_one()
    if active >= settings.max_active_backups_per_user:
        raise TooManyRequests(
            "Trop de sauvegardes et restaurations en cours pour cet utilisateur, "
            "réessayez plus tard",
            retry_after=30,
        )


def ensure_within_quota(connection: Connection, settings: Settings, user_id: int) -> None:
    """507 when the user's stored backups already fill their quota."""
    quota = settings.user_quota_bytes
    if quota is None:
        return
    used = int(connection.execute(_STORED_BYTES, {"user_id": user_id}).scalar_one())
    if used >= quota:
        raise InsufficientStorage(
            f"Quota de stockage atteint: vos sauvegardes occupent {used} octets "
            f"sur {quota} autorisés; supprimez-en pour en créer de nouvelles"
        )


async def ensure_disk_reserve(storage: Storage, settings: Settings) -> None:
    """507 when the backup root's free space is already below the reserve."""
    if settings.disk_reserve_percent <= 0:
        return
    if below_reserve(await storage.space(), settings.disk_reserve_percent):
        raise InsufficientStorage(
            "Espace disque insuffisant sur le serveur de sauvegarde: "
            "aucune sauvegarde ne peut démarrer pour le moment, réessayez plus tard"
        )
