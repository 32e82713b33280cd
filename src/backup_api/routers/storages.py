"""Storages: the off-site destinations (S3-compatible buckets) of a user's backups."""

from __future__ import annotations

from fastapi import APIRouter, status

from backup_api import audit
from backup_api.deps import CurrentUser, PageDep, StateDep, StorageDep
from backup_api.models import (
    MessageResponse,
    StorageCreate,
    StorageEnvelope,
    StorageImport,
    StorageItem,
    StorageList,
    StoragePublic,
    StorageTestResult,
    StorageUpdate,
)
from backup_api.repositories import Record
from backup_api.routers.responses import (
    INVALID_ENDPOINT,
    OWNER_ONLY,
    SECRET_REQUIRED,
    STORAGE_BEING_WRITTEN,
    STORAGE_HOLDS_COPIES,
    STORAGE_IN_USE,
    STORAGE_NOT_FOUND,
    STORAGE_TESTS_THROTTLED,
    STORAGE_UNREACHABLE,
    errors,
)
from backup_api.services import backups as backups_service
from backup_api.services import storageimport, storagetests
from backup_api.services import storages as storages_service

router = APIRouter(prefix="/api/storages", tags=["storages"])

ONE_STORAGE = (OWNER_ONLY, STORAGE_NOT_FOUND)


def _public(storage: Record) -> StoragePublic:
    return StoragePublic.model_validate(storage, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StorageEnvelope,
    summary="Add a storage",
    responses=errors(INVALID_ENDPOINT),
)
async def create_storage(
    data: StorageCreate, user: CurrentUser, state: StateDep
) -> StorageEnvelope:
    """Add an S3-compatible bucket that databases may send their backups to. The secret
    key is encrypted at rest and never returned."""
    storage = await storages_service.create_storage(
        metadata=state.metadata, keys=state.keys, owner=user, data=data
    )
    audit.record(
        audit.STORAGE_CREATE, audit.SUCCESS, target_type=audit.STORAGE, target_id=storage.id
    )
    return StorageEnvelope(message="Stockage ajouté avec succès", storage=_public(storage))


@router.get("", response_model=StorageList, summary="List storages", responses=errors())
async def list_storages(user: CurrentUser, state: StateDep, page: PageDep) -> StorageList:
    """List your storages (an admin sees all)."""
    storages = await storages_service.list_storages(
        metadata=state.metadata, user=user, limit=page.limit, offset=page.offset
    )
    return StorageList(storages=[_public(s) for s in storages])


@router.get(
    "/{storage_id}",
    response_model=StorageItem,
    summary="Get a storage",
    responses=errors(*ONE_STORAGE),
)
async def get_storage(storage: StorageDep) -> StorageItem:
    """One storage (never its secret key)."""
    return StorageItem(storage=_public(storage))


@router.put(
    "/{storage_id}",
    response_model=StorageEnvelope,
    summary="Update a storage",
    responses=errors(INVALID_ENDPOINT, SECRET_REQUIRED, *ONE_STORAGE),
)
async def update_storage(
    data: StorageUpdate, storage: StorageDep, state: StateDep
) -> StorageEnvelope:
    """Update a storage; omitted fields are kept (without `secret_access_key`, the stored
    one), and changing `endpoint` or `bucket` needs `secret_access_key` too."""
    updated = await storages_service.update_storage(
        metadata=state.metadata, keys=state.keys, storage=storage, data=data
    )
    audit.record(
        audit.STORAGE_UPDATE,
        audit.SUCCESS,
        target_type=audit.STORAGE,
        target_id=storage.id,
        fields=sorted(data.model_fields_set),
    )
    return StorageEnvelope(message="Stockage mis à jour avec succès", storage=_public(updated))


@router.delete(
    "/{storage_id}",
    response_model=MessageResponse,
    summary="Delete a storage",
    responses=errors(*ONE_STORAGE, STORAGE_IN_USE, STORAGE_BEING_WRITTEN, STORAGE_HOLDS_COPIES),
)
async def delete_storage(storage: StorageDep, state: StateDep) -> MessageResponse:
    """Delete a storage that no database sends backups to and that holds no copy (the
    objects in the bucket are not touched)."""
    await storages_service.delete_storage(metadata=state.metadata, storage=storage)
    audit.record(
        audit.STORAGE_DELETE, audit.SUCCESS, target_type=audit.STORAGE, target_id=storage.id
    )
    return MessageResponse(message="Stockage supprimé avec succès")


@router.post(
    "/{storage_id}/test",
    response_model=StorageTestResult,
    response_model_exclude_none=True,
    summary="Test a storage",
    responses=errors(*ONE_STORAGE, STORAGE_TESTS_THROTTLED),
)
async def test_storage(
    storage: StorageDep, user: CurrentUser, state: StateDep
) -> StorageTestResult:
    """Write, read back and delete a small object under the prefix, as a backup would
    reach the bucket (same address rules, same credentials), and answer `ok: true`, or
    `ok: false` with why (refused credentials, missing bucket, unreachable endpoint, TLS
    error...). The secret key is never in the answer."""
    return await storagetests.run_storage_test(
        settings=state.settings,
        metadata=state.metadata,
        keys=state.keys,
        limiter=state.connection_tests,
        caller=user,
        storage=storage,
    )


@router.post(
    "/{storage_id}/import",
    response_model=StorageImport,
    summary="Import the backups a storage holds",
    responses=errors(*ONE_STORAGE, STORAGE_UNREACHABLE),
)
async def import_storage(storage: StorageDep, state: StateDep) -> StorageImport:
    """Read each archive's manifest under the storage's prefix and record, as completed
    backups of the storage's owner, those this service does not know (a new instance, a
    lost metadata database): they can be downloaded, verified and restored at once."""
    outcome = await storageimport.import_backups(
        metadata=state.metadata, copy_store=state.copy_store, storage=storage
    )
    audit.record(
        audit.STORAGE_IMPORT,
        audit.SUCCESS,
        target_type=audit.STORAGE,
        target_id=storage.id,
        imported=len(outcome.imported),
    )
    return StorageImport(
        message=f"{len(outcome.imported)} sauvegarde(s) importée(s)",
        found=outcome.found,
        imported=[backups_service.to_public(row, rows) for row, rows in outcome.imported],
        known=outcome.known,
        invalid=outcome.invalid,
    )
