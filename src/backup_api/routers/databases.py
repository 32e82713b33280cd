"""Registered database servers."""

from __future__ import annotations

from fastapi import APIRouter, status

from backup_api import audit, encryption
from backup_api.deps import CurrentUser, DatabaseDep, PageDep, StateDep
from backup_api.models import (
    ConnectionTestResult,
    DatabaseCreate,
    DatabaseEnvelope,
    DatabaseItem,
    DatabaseList,
    DatabasePublic,
    DatabaseUpdate,
    MessageResponse,
)
from backup_api.routers.responses import (
    CONNECTION_TESTS_THROTTLED,
    DATABASE_BUSY,
    DATABASE_BUSY_DELETE,
    DATABASE_NOT_FOUND,
    DRILL_TARGET_BACKED_UP,
    HOST_REFUSED,
    HOST_UNRESOLVED,
    INVALID_PORT,
    NO_DESTINATION,
    OWNER_ONLY,
    SCRATCH_CONFIRM_REQUIRED,
    STORAGE_NOT_FOUND,
    STORAGE_OF_ANOTHER,
    STORAGE_OWNER_MISMATCH,
    UNSUPPORTED_TYPE,
    errors,
)
from backup_api.services import connectiontests
from backup_api.services import databases as databases_service
from backup_api.services.databases import DatabaseView

router = APIRouter(prefix="/api/databases", tags=["databases"])

ONE_DATABASE = (OWNER_ONLY, DATABASE_NOT_FOUND)


def _public(view: DatabaseView) -> DatabasePublic:
    fields = {
        **view.record._mapping,
        "storage_ids": view.storage_ids,
        "encryption": encryption.public(view.record),
    }
    return DatabasePublic.model_validate(fields)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatabaseEnvelope,
    summary="Register a database",
    responses=errors(
        UNSUPPORTED_TYPE,
        INVALID_PORT,
        NO_DESTINATION,
        SCRATCH_CONFIRM_REQUIRED,
        DRILL_TARGET_BACKED_UP,
        HOST_REFUSED,
        HOST_UNRESOLVED,
        STORAGE_OF_ANOTHER,
        STORAGE_NOT_FOUND,
    ),
)
async def create_database(
    data: DatabaseCreate, user: CurrentUser, state: StateDep
) -> DatabaseEnvelope:
    """Register a PostgreSQL or MySQL/MariaDB database to back up; `storage_ids` and
    `keep_local` say where its backups go."""
    database, warning = await databases_service.create_database(
        metadata=state.metadata,
        settings=state.settings,
        keys=state.keys,
        probe=state.server_probe,
        owner=user,
        data=data,
    )
    audit.record(
        audit.DATABASE_CREATE,
        audit.SUCCESS,
        target_type=audit.DATABASE,
        target_id=database.record.id,
    )
    return DatabaseEnvelope(
        message="Base de données ajoutée avec succès", database=_public(database), warning=warning
    )


@router.get("", response_model=DatabaseList, summary="List databases", responses=errors())
async def list_databases(user: CurrentUser, state: StateDep, page: PageDep) -> DatabaseList:
    """List your registered databases (an admin sees all)."""
    databases = await databases_service.list_databases(
        metadata=state.metadata, user=user, limit=page.limit, offset=page.offset
    )
    return DatabaseList(databases=[_public(d) for d in databases])


@router.get(
    "/{database_id}",
    response_model=DatabaseItem,
    summary="Get a database",
    responses=errors(*ONE_DATABASE),
)
async def get_database(database: DatabaseDep, state: StateDep) -> DatabaseItem:
    """One registered database (never its password)."""
    return DatabaseItem(database=_public(await databases_service.view(state.metadata, database)))


@router.put(
    "/{database_id}",
    response_model=DatabaseEnvelope,
    summary="Update a database",
    responses=errors(
        UNSUPPORTED_TYPE,
        INVALID_PORT,
        NO_DESTINATION,
        SCRATCH_CONFIRM_REQUIRED,
        DRILL_TARGET_BACKED_UP,
        STORAGE_OWNER_MISMATCH,
        *ONE_DATABASE,
        HOST_REFUSED,
        HOST_UNRESOLVED,
        STORAGE_OF_ANOTHER,
        STORAGE_NOT_FOUND,
        DATABASE_BUSY,
    ),
)
async def update_database(
    data: DatabaseUpdate, database: DatabaseDep, user: CurrentUser, state: StateDep
) -> DatabaseEnvelope:
    """Update a registered database; without `password` the stored one is kept."""
    updated, warning = await databases_service.update_database(
        metadata=state.metadata,
        settings=state.settings,
        keys=state.keys,
        probe=state.server_probe,
        queue=state.queue,
        caller=user,
        database=database,
        data=data,
    )
    audit.record(
        audit.DATABASE_UPDATE,
        audit.SUCCESS,
        target_type=audit.DATABASE,
        target_id=database.id,
        fields=sorted(data.model_fields_set),
    )
    return DatabaseEnvelope(
        message="Base de données mise à jour avec succès",
        database=_public(updated),
        warning=warning,
    )


@router.delete(
    "/{database_id}",
    response_model=MessageResponse,
    summary="Delete a database",
    responses=errors(*ONE_DATABASE, DATABASE_BUSY_DELETE),
)
async def delete_database(database: DatabaseDep, state: StateDep) -> MessageResponse:
    """Delete a registered database; its backups are kept."""
    await databases_service.delete_database(
        metadata=state.metadata, queue=state.queue, database=database
    )
    audit.record(
        audit.DATABASE_DELETE, audit.SUCCESS, target_type=audit.DATABASE, target_id=database.id
    )
    return MessageResponse(message="Base de données supprimée avec succès")


@router.post(
    "/{database_id}/test",
    response_model=ConnectionTestResult,
    response_model_exclude_none=True,
    summary="Test a database's connection",
    responses=errors(*ONE_DATABASE, CONNECTION_TESTS_THROTTLED),
)
async def test_database(
    database: DatabaseDep, user: CurrentUser, state: StateDep
) -> ConnectionTestResult:
    """Connect as a backup would (same checks, same address, same credentials) and answer
    `ok: true` with the server's version, the database's size and the dump client a backup
    would run, or `ok: false` with why a backup would fail (its category; an admin also
    reads the tool's message). The password is never in the answer."""
    return await connectiontests.run_connection_test(
        metadata=state.metadata,
        keys=state.keys,
        probe=state.server_probe,
        limiter=state.connection_tests,
        caller=user,
        database=database,
    )
