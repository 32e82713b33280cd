"""Restores: put a completed backup back into a registered database."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status
from sse_starlette import EventSourceResponse

from backup_api import audit
from backup_api.deps import BackupDep, CurrentUser, IdPath, PageDep, RestoreDep, StateDep
from backup_api.exceptions import BadRequest
from backup_api.jobs.queue import JobKind
from backup_api.models import (
    MessageResponse,
    RestoreCreate,
    RestoreEnvelope,
    RestoreItem,
    RestoreList,
)
from backup_api.routers.responses import (
    BACKUP_NOT_COMPLETED,
    BACKUP_NOT_FOUND,
    CONFIRM_REQUIRED,
    DISK_RESERVE_REACHED,
    EVENT_STREAM,
    IDENTITY_REQUIRED,
    JOBS_THROTTLED,
    MISSING_TARGET,
    OWNER_ONLY,
    QUOTA_REACHED,
    RESTORE_NOT_FOUND,
    TARGET_BUSY,
    TARGET_NOT_FOUND,
    TARGET_TYPE_MISMATCH,
    WRONG_IDENTITY,
    errors,
)
from backup_api.services import restores as restores_service
from backup_api.services.jobevents import PING_SECONDS, job_events

router = APIRouter(tags=["restores"])

ONE_RESTORE = (OWNER_ONLY, RESTORE_NOT_FOUND)


@router.post(
    "/api/backups/{backup_id}/restore",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RestoreEnvelope,
    summary="Restore a backup",
    responses=errors(
        MISSING_TARGET,
        IDENTITY_REQUIRED,
        WRONG_IDENTITY,
        CONFIRM_REQUIRED,
        TARGET_TYPE_MISMATCH,
        OWNER_ONLY,
        BACKUP_NOT_FOUND,
        TARGET_NOT_FOUND,
        BACKUP_NOT_COMPLETED,
        TARGET_BUSY,
        JOBS_THROTTLED,
        QUOTA_REACHED,
        DISK_RESERVE_REACHED,
    ),
    # The body is required. The parameter defaults to None only so that a request without
    # one gets the message naming database_id; typed without "| None", its schema stays
    # the model's and its errors name the fields plainly (no union branch in their path).
    openapi_extra={"requestBody": {"required": True}},
)
async def create_restore(
    backup: BackupDep,
    user: CurrentUser,
    state: StateDep,
    data: Annotated[RestoreCreate, Body()] = None,  # type: ignore[assignment]
) -> RestoreEnvelope:
    """Restore a backup into the database `database_id` (same type, yours).

    Over the backup's own source, `confirm` must hold that database's `db_name`. With
    `backup_target_first`, the target is backed up first (`safety_backup_id`), and the
    restore only goes on if that backup completes. A backup encrypted to age recipients
    needs `identity` (the secret key of one of them), checked against the file before
    anything is queued and kept in memory for this restore only.
    """
    if data is None:
        raise BadRequest(restores_service.MISSING_TARGET)
    restore = await restores_service.create_restore(
        metadata=state.metadata,
        settings=state.settings,
        storage=state.storage,
        queue=state.queue,
        user=user,
        backup=backup,
        target_id=data.database_id,
        copy_store=state.copy_store,
        keys=state.keys,
        identities=state.restore_identities,
        confirm=data.confirm,
        backup_target_first=data.backup_target_first,
        identity=data.identity,
    )
    audit.record(
        audit.RESTORE_CREATE,
        audit.SUCCESS,
        target_type=audit.RESTORE,
        target_id=restore.id,
        backup_id=backup.id,
        database_id=data.database_id,
        safety_backup=data.backup_target_first,
    )
    return RestoreEnvelope(
        message="Restauration créée avec succès. Le processus de restauration a commencé.",
        restore=restore,
    )


@router.get(
    "/api/restores", response_model=RestoreList, summary="List restores", responses=errors()
)
async def list_restores(user: CurrentUser, state: StateDep, page: PageDep) -> RestoreList:
    """List your restores, newest first (an admin sees all)."""
    restores = await restores_service.list_restores(
        metadata=state.metadata,
        user=user,
        limit=page.limit,
        offset=page.offset,
        progress=state.progress,
    )
    return RestoreList(restores=restores)


@router.get(
    "/api/restores/{restore_id}",
    response_model=RestoreItem,
    summary="Get a restore",
    responses=errors(*ONE_RESTORE),
)
async def get_restore(restore: RestoreDep, state: StateDep) -> RestoreItem:
    """One restore, with its status and, when failed, the reason in `error_msg`; while it
    runs, its `phase` and `progress`."""
    return RestoreItem(restore=restores_service.to_public(restore, state.progress))


@router.get(
    "/api/restores/{restore_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a restore live (Server-Sent Events)",
    responses={200: EVENT_STREAM, **errors(*ONE_RESTORE)},
)
async def restore_events(restore_id: IdPath, user: CurrentUser, state: StateDep) -> Response:
    """The restore's record as `progress` events while it runs (`phase`, `progress`),
    then the final record as a `done` event (works with `curl -N`)."""

    async def fetch() -> tuple[bytes, str]:
        return await restores_service.restore_document(
            metadata=state.metadata, user=user, restore_id=restore_id, progress=state.progress
        )

    events = job_events(
        await fetch(),
        fetch,
        board=state.progress,
        kind=JobKind.RESTORE,
        job_id=restore_id,
        interval=state.settings.progress_interval_seconds,
    )
    return EventSourceResponse(events, ping=PING_SECONDS)


@router.delete(
    "/api/restores/{restore_id}",
    response_model=MessageResponse,
    summary="Delete a restore",
    responses=errors(*ONE_RESTORE),
)
async def delete_restore(restore: RestoreDep, state: StateDep) -> MessageResponse:
    """Delete a restore record; a running restore is stopped first and rolls back."""
    await restores_service.delete_restore(
        metadata=state.metadata,
        queue=state.queue,
        restore=restore,
        identities=state.restore_identities,
    )
    audit.record(
        audit.RESTORE_DELETE, audit.SUCCESS, target_type=audit.RESTORE, target_id=restore.id
    )
    return MessageResponse(message="Restauration supprimée avec succès")
