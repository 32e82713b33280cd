"""Whether a user may queue one more job: the per-user cap of pending jobs, the storage
quota of the account and the free-space reserve of the backup root.

The row checks run inside the unit of work that inserts the job, so that two concurrent
requests cannot both take the last place.
"""

from __future__ import annotations

from sqlalchemy import Connection

from backup_api.config import Settings
from backup_api.diskspace import below_reserve
from backup_api.exceptions import InsufficientStorage, TooManyRequests
from backup_api.repositories import backups, jobs
from backup_api.storage.base import Storage


def ensure_job_slot(connection: Connection, settings: Settings, user_id: int) -> None:
    """429 when the user already has as many pending backups and restores as allowed."""
    if jobs.pending_of_user(connection, user_id) >= settings.max_active_backups_per_user:
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
    used = backups.stored_bytes(connection, user_id)
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
