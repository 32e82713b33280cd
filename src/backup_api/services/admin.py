"""Administrative use cases that span several entities."""

from __future__ import annotations

import logging
from functools import partial

from sqlalchemy import Connection

from backup_api.copies.store import CopyStore
from backup_api.db import Metadata
from backup_api.jobs.queue import CancelReason, JobKind, JobQueue
from backup_api.principals import PrincipalCache
from backup_api.repositories import (
    Record,
    api_tokens,
    backups,
    copies,
    databases,
    drills,
    restores,
    users,
)
from backup_api.services.users import changing_principal

logger = logging.getLogger("backup_api.admin")


async def delete_user(
    *,
    metadata: Metadata,
    copy_store: CopyStore,
    queue: JobQueue,
    principals: PrincipalCache,
    user: Record,
) -> None:
    """Stop the user's jobs, remove every copy of their archives (those that cannot be
    removed are logged: the account goes all the same), then the account and all its
    records."""
    user_id: int = user.id

    def jobs_of_user(connection: Connection) -> tuple[list[int], list[int], list[Record]]:
        return (
            drills.ids_of_user(connection, user_id),
            restores.ids_of_user(connection, user_id),
            backups.files_of_user(connection, user_id),
        )

    drill_ids, restore_ids, files = await metadata.read(jobs_of_user)
    for drill_id in drill_ids:
        await queue.cancel(JobKind.DRILL, drill_id, CancelReason.DELETED)
    for restore_id in restore_ids:
        await queue.cancel(JobKind.RESTORE, restore_id, CancelReason.DELETED)
    for backup in files:
        await queue.cancel(JobKind.BACKUP, backup.id, CancelReason.DELETED)
        backup_id: int = backup.id
        for copy in await metadata.read(partial(copies.of_backup, backup_id=backup_id)):
            reason = await copy_store.delete(copy)
            if reason is not None:
                logger.warning(
                    "account %s deleted: copy %s of backup %s left (%s)",
                    user_id,
                    copy.location,
                    backup_id,
                    reason,
                )

    def delete_all(connection: Connection) -> None:
        drills.delete_of_user(connection, user_id)
        restores.delete_of_user(connection, user_id)
        backups.delete_of_user(connection, user_id)
        databases.delete_of_user(connection, user_id)
        api_tokens.delete_of_user(connection, user_id)
        users.delete_user(connection, user_id)

    await changing_principal(metadata, principals, user_id, delete_all)
