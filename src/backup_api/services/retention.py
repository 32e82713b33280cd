"""Retention policies of registered databases: save, read, remove, preview."""

from __future__ import annotations

from backup_api.db import Metadata
from backup_api.exceptions import NotFound
from backup_api.models import (
    PreviewDelete,
    PreviewKeep,
    RetentionPolicyBody,
    RetentionPreview,
)
from backup_api.repositories import Record, retention
from backup_api.retention.policy import Policy
from backup_api.retention.sweep import SAVED, RetentionSweeper

NO_POLICY = "Aucune politique de rétention pour cette base de données"


def policy_from_body(body: RetentionPolicyBody) -> Policy:
    return Policy(**body.model_dump())


async def get_policy(*, metadata: Metadata, database: Record) -> Record:
    database_id: int = database.id
    policy = await metadata.read(lambda c: retention.get_policy(c, database_id))
    if policy is None:
        raise NotFound(NO_POLICY)
    return policy


async def put_policy(*, metadata: Metadata, database: Record, body: RetentionPolicyBody) -> Record:
    """Create or replace the database's policy (omitted counts are 0)."""
    database_id: int = database.id
    values = body.model_dump()
    return await metadata.write(lambda c: retention.save_policy(c, database_id, values))


async def delete_policy(*, metadata: Metadata, database: Record) -> None:
    database_id: int = database.id
    if not await metadata.write(lambda c: retention.delete_policy(c, database_id)):
        raise NotFound(NO_POLICY)


async def preview(
    *,
    sweeper: RetentionSweeper,
    database: Record,
    body: RetentionPolicyBody | None,
) -> RetentionPreview:
    """What the next sweep would do, under ``body`` or else the saved policy."""
    policy = SAVED if body is None else policy_from_body(body)
    plan = await sweeper.plan(database.id, policy)
    return RetentionPreview(
        keep=[PreviewKeep(backup_id=k.backup_id, reasons=list(k.reasons)) for k in plan.keep],
        delete=[
            PreviewDelete(backup_id=d.backup_id, created_at=d.created_at, reason=d.reason)
            for d in plan.delete
        ],
    )
