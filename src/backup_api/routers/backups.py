"""Backups: start one, list, inspect, download, verify, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from backup_api import audit
from backup_api.copies.retry import NothingToRetry
from backup_api.deps import BackupDep, CurrentUser, IdPath, PageDep, StateDep
from backup_api.exceptions import Conflict
from backup_api.jobs.queue import JobKind
from backup_api.models import (
    BackupEnvelope,
    BackupItem,
    BackupList,
    BackupUpdate,
    MessageResponse,
    VerificationPublic,
    VerificationResponse,
)
from backup_api.routers.responses import (
    BACKUP_FILE_MISSING,
    BACKUP_NOT_COMPLETED,
    BACKUP_NOT_FOUND,
    COPIES_NOT_DELETED,
    COPY_NOT_COMPLETE,
    DATABASE_NOT_FOUND,
    DISK_RESERVE_REACHED,
    EVENT_STREAM,
    JOBS_THROTTLED,
    NO_COMPLETE_COPY,
    NO_SUCH_COPY,
    NOTHING_TO_RETRY,
    OWNER_ONLY,
    QUOTA_REACHED,
    RESTORE_RUNNING,
    STORAGE_UNREACHABLE,
    errors,
    json_response,
)
from backup_api.services import backups as backups_service
from backup_api.services.jobevents import PING_SECONDS, job_events

router = APIRouter(prefix="/api/backups", tags=["backups"])

CREATED_MESSAGE = "Sauvegarde créée avec succès. Le processus de sauvegarde a commencé."
ONE_BACKUP = (OWNER_ONLY, BACKUP_NOT_FOUND)
#: Which copy a download or a verification reads: ``local`` or a storage's id.
CopyChoice = Annotated[
    str | None,
    Query(
        pattern=r"^(local|[1-9][0-9]{0,9})$",
        description="The copy to read: `local`, or a storage's id; by default the local "
        "copy, else the first complete one",
    ),
]


@router.post(
    "/database/{database_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackupEnvelope,
    summary="Start a backup",
    responses=errors(
        OWNER_ONLY, DATABASE_NOT_FOUND, JOBS_THROTTLED, QUOTA_REACHED, DISK_RESERVE_REACHED
    ),
)
async def create_backup(database_id: IdPath, user: CurrentUser, state: StateDep) -> Response:
    """Start a backup in the background; returns the `pending` record at once (507 when
    your storage quota or the server's free-space reserve is reached)."""
    backup = await backups_service.create_backup(
        metadata=state.metadata,
        settings=state.settings,
        storage=state.storage,
        queue=state.queue,
        user=user,
        database_id=database_id,
    )
    audit.record(
        audit.BACKUP_CREATE,
        audit.SUCCESS,
        target_type=audit.BACKUP,
        target_id=backup.id,
        database_id=database_id,
    )
    envelope = BackupEnvelope.model_construct(message=CREATED_MESSAGE, backup=backup)
    return json_response(envelope, status.HTTP_202_ACCEPTED)


@router.get("", response_model=BackupList, summary="List backups", responses=errors())
async def list_backups(user: CurrentUser, page: PageDep, state: StateDep) -> Response:
    """List your backups, newest first (an admin sees all)."""
    body = await backups_service.list_backups_json(
        metadata=state.metadata,
        user=user,
        limit=page.limit,
        offset=page.offset,
        progress=state.progress,
    )
    return Response(body, media_type="application/json")


@router.get(
    "/database/{database_id}",
    response_model=BackupList,
    summary="List a database's backups",
    responses=errors(OWNER_ONLY, DATABASE_NOT_FOUND),
)
async def list_database_backups(
    database_id: IdPath, user: CurrentUser, page: PageDep, state: StateDep
) -> Response:
    """List the backups of one database, newest first."""
    body = await backups_service.list_backups_json(
        metadata=state.metadata,
        user=user,
        limit=page.limit,
        offset=page.offset,
        progress=state.progress,
        database_id=database_id,
    )
    return Response(body, media_type="application/json")


@router.get(
    "/{backup_id}", response_model=BackupItem, summary="Get a backup", responses=errors(*ONE_BACKUP)
)
async def get_backup(backup_id: IdPath, user: CurrentUser, state: StateDep) -> Response:
    """One backup, with its status and, when failed, the reason in `error_msg`; while it
    runs, its `phase` and `progress`."""
    body = await backups_service.get_backup_json(
        metadata=state.metadata, user=user, backup_id=backup_id, progress=state.progress
    )
    return Response(body, media_type="application/json")


@router.get(
    "/{backup_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a backup live (Server-Sent Events)",
    responses={200: EVENT_STREAM, **errors(*ONE_BACKUP)},
)
async def backup_events(backup_id: IdPath, user: CurrentUser, state: StateDep) -> Response:
    """The backup's record as `progress` events while it runs (`phase`, `progress`),
    then the final record as a `done` event (works with `curl -N`)."""

    async def fetch() -> tuple[bytes, str]:
        return await backups_service.backup_document(
            metadata=state.metadata, user=user, backup_id=backup_id, progress=state.progress
        )

    events = job_events(
        await fetch(),
        fetch,
        board=state.progress,
        kind=JobKind.BACKUP,
        job_id=backup_id,
        interval=state.settings.progress_interval_seconds,
    )
    return EventSourceResponse(events, ping=PING_SECONDS)


@router.get(
    "/{backup_id}/download",
    response_class=StreamingResponse,
    summary="Download a backup",
    responses={
        200: {
            "content": {
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "The ZIP archive, or the age file (`.zip.age`) of an encrypted "
            "backup, as stored",
        },
        **errors(
            *ONE_BACKUP,
            BACKUP_FILE_MISSING,
            BACKUP_NOT_COMPLETED,
            NO_SUCH_COPY,
            NO_COMPLETE_COPY,
            COPY_NOT_COMPLETE,
            STORAGE_UNREACHABLE,
        ),
    },
)
async def download_backup(
    backup: BackupDep, state: StateDep, storage_id: CopyChoice = None
) -> StreamingResponse:
    """Download the ZIP archive of a completed backup (streamed); an encrypted backup's
    file as stored (the age format, `.zip.age`)."""
    download = await backups_service.open_download(
        metadata=state.metadata,
        copy_store=state.copy_store,
        backup=backup,
        storage_id=storage_id,
        downloads=state.retention.downloads,
    )
    audit.record(
        audit.BACKUP_DOWNLOAD,
        audit.SUCCESS,
        target_type=audit.BACKUP,
        target_id=backup.id,
        copy=storage_id or "default",
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{download.filename}"',
        "Content-Length": str(download.size),
    }
    if download.checksum:
        headers["ETag"] = f'"{download.checksum}"'
        headers["X-Checksum-SHA256"] = download.checksum
    # An encrypted backup is sent as stored: the age file (`.zip.age`).
    media_type = "application/octet-stream" if download.encrypted else "application/zip"
    return StreamingResponse(download.chunks, media_type=media_type, headers=headers)


@router.post(
    "/{backup_id}/verify",
    response_model=VerificationResponse,
    summary="Verify a backup",
    responses=errors(
        *ONE_BACKUP, BACKUP_NOT_COMPLETED, NO_SUCH_COPY, NO_COMPLETE_COPY, COPY_NOT_COMPLETE
    ),
)
async def verify_backup(
    backup: BackupDep, state: StateDep, storage_id: CopyChoice = None
) -> VerificationResponse:
    """Recompute the archive's SHA-256 and test the ZIP. An encrypted backup's whole age
    stream is authenticated, and its ZIP tested when the service holds its passphrase
    (`contents_checked`)."""
    result = await backups_service.verify_backup(
        metadata=state.metadata,
        copy_store=state.copy_store,
        settings=state.settings,
        keys=state.keys,
        executor=state.executor,
        launcher=state.archive_processes,
        backup=backup,
        storage_id=storage_id,
    )
    audit.record(
        audit.BACKUP_VERIFY,
        audit.SUCCESS,
        target_type=audit.BACKUP,
        target_id=backup.id,
        valid=result.valid,
        copy=storage_id or "default",
    )
    if not result.valid:
        message = "Sauvegarde corrompue"
    elif result.contents_checked:
        message = "Sauvegarde intègre"
    else:
        message = (
            "Fichier chiffré intègre (SHA-256 et structure age); le ZIP qu'il contient n'a "
            "pas été vérifié: il faut l'identité des destinataires pour le déchiffrer"
        )
    return VerificationResponse(
        message=message,
        verification=VerificationPublic(
            valid=result.valid,
            checksum_expected=result.checksum_expected,
            checksum_actual=result.checksum_actual,
            error=result.error,
            contents_checked=result.contents_checked,
        ),
        backup=await backups_service.public(state.metadata, backup, state.progress),
    )


@router.delete(
    "/{backup_id}",
    response_model=MessageResponse,
    summary="Delete a backup",
    responses=errors(*ONE_BACKUP, RESTORE_RUNNING, COPIES_NOT_DELETED),
)
async def delete_backup(backup: BackupDep, state: StateDep) -> MessageResponse:
    """Delete a backup and every copy of it; a running dump is stopped first. A copy that
    cannot be deleted (a storage that does not answer, Object Lock) stays `delete_failed`
    with the reason, and so does the backup: 409 naming it."""
    await backups_service.delete_backup(
        metadata=state.metadata, copy_store=state.copy_store, queue=state.queue, backup=backup
    )
    audit.record(audit.BACKUP_DELETE, audit.SUCCESS, target_type=audit.BACKUP, target_id=backup.id)
    return MessageResponse(message="Sauvegarde supprimée avec succès")


@router.put(
    "/{backup_id}",
    response_model=BackupEnvelope,
    summary="Pin or unpin a backup",
    responses=errors(*ONE_BACKUP),
)
async def update_backup(data: BackupUpdate, backup: BackupDep, state: StateDep) -> BackupEnvelope:
    """`{"pinned": true}` keeps a backup out of retention for good; `false` hands it back."""
    backup = await backups_service.set_pinned(
        metadata=state.metadata, backup=backup, pinned=data.pinned
    )
    audit.record(
        audit.BACKUP_PIN,
        audit.SUCCESS,
        target_type=audit.BACKUP,
        target_id=backup.id,
        pinned=bool(backup.pinned),
    )
    message = "Sauvegarde épinglée" if backup.pinned else "Sauvegarde désépinglée"
    return BackupEnvelope(
        message=message, backup=await backups_service.public(state.metadata, backup, state.progress)
    )


@router.post(
    "/{backup_id}/copies/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackupEnvelope,
    summary="Send missing copies again",
    responses=errors(*ONE_BACKUP, NOTHING_TO_RETRY),
)
async def retry_copies(backup: BackupDep, state: StateDep) -> BackupEnvelope:
    """Send the copies that failed again from a complete one (checked against the
    backup's checksum first), or finish a deletion that left copies (`delete_failed`).
    It runs in the background: the copies it sends are `running` in the answer, and the
    backup becomes `completed` once every copy is."""
    try:
        await state.copy_retrier.request(backup.id)
    except NothingToRetry as exc:
        message = str(exc)
        raise Conflict(message[:1].upper() + message[1:]) from None
    return BackupEnvelope(
        message="Nouvel envoi des copies lancé",
        backup=await backups_service.public(state.metadata, backup, state.progress),
    )
