"""Retention policies of registered databases, and their preview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backup_api import audit
from backup_api.deps import DatabaseDep, StateDep
from backup_api.models import (
    MessageResponse,
    RetentionEnvelope,
    RetentionItem,
    RetentionPolicyBody,
    RetentionPreview,
    RetentionPublic,
)
from backup_api.repositories import Record
from backup_api.routers.responses import (
    DATABASE_NOT_FOUND,
    INVALID_RETENTION,
    OWNER_ONLY,
    RETENTION_NOT_FOUND,
    errors,
)
from backup_api.services import retention as retention_service

router = APIRouter(prefix="/api/databases", tags=["retention"])

ONE_DATABASE = (OWNER_ONLY, DATABASE_NOT_FOUND)


def _public(policy: Record) -> RetentionPublic:
    return RetentionPublic.model_validate(policy, from_attributes=True)


@router.put(
    "/{database_id}/retention",
    response_model=RetentionEnvelope,
    summary="Set a database's retention policy",
    responses=errors(INVALID_RETENTION, *ONE_DATABASE),
)
async def put_retention(
    data: RetentionPolicyBody, database: DatabaseDep, state: StateDep
) -> RetentionEnvelope:
    """Create or replace the policy; omitted counts are 0, `max_age_days` null is no
    limit. The next sweep (after the database's next backup, or within the hour) applies
    it: see `/retention/preview`."""
    policy = await retention_service.put_policy(
        metadata=state.metadata, database=database, body=data
    )
    audit.record(
        audit.RETENTION_UPDATE, audit.SUCCESS, target_type=audit.DATABASE, target_id=database.id
    )
    return RetentionEnvelope(
        message="Politique de rétention enregistrée", retention=_public(policy)
    )


@router.get(
    "/{database_id}/retention",
    response_model=RetentionItem,
    summary="Get a database's retention policy",
    responses=errors(*ONE_DATABASE, RETENTION_NOT_FOUND),
)
async def get_retention(database: DatabaseDep, state: StateDep) -> RetentionItem:
    """The saved policy (404 when none: every backup is kept)."""
    policy = await retention_service.get_policy(metadata=state.metadata, database=database)
    return RetentionItem(retention=_public(policy))


@router.delete(
    "/{database_id}/retention",
    response_model=MessageResponse,
    summary="Remove a database's retention policy",
    responses=errors(*ONE_DATABASE, RETENTION_NOT_FOUND),
)
async def delete_retention(database: DatabaseDep, state: StateDep) -> MessageResponse:
    """Without a policy, every backup of the database is kept."""
    await retention_service.delete_policy(metadata=state.metadata, database=database)
    audit.record(
        audit.RETENTION_DELETE, audit.SUCCESS, target_type=audit.DATABASE, target_id=database.id
    )
    return MessageResponse(message="Politique de rétention supprimée")


@router.get(
    "/{database_id}/retention/preview",
    response_model=RetentionPreview,
    summary="Preview the next retention sweep",
    responses=errors(INVALID_RETENTION, *ONE_DATABASE),
)
async def preview_retention(
    query: Annotated[RetentionPolicyBody, Query()],
    database: DatabaseDep,
    state: StateDep,
) -> RetentionPreview:
    """What the next sweep would keep (and why) and delete, under the saved policy, or
    under the policy given in the query (`?keep_daily=7&keep_weekly=4`) to try one."""
    body = query if query.model_fields_set else None
    return await retention_service.preview(sweeper=state.retention, database=database, body=body)


@router.post(
    "/{database_id}/retention/preview",
    response_model=RetentionPreview,
    summary="Preview a retention policy before saving it",
    responses=errors(INVALID_RETENTION, *ONE_DATABASE),
)
async def preview_retention_body(
    data: RetentionPolicyBody, database: DatabaseDep, state: StateDep
) -> RetentionPreview:
    """What the next sweep would keep (and why) and delete under the policy given; nothing
    is saved or deleted."""
    return await retention_service.preview(sweeper=state.retention, database=database, body=data)
