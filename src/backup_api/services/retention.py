"""Retention policies of registered databases: save, read, remove, preview."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.exceptions import NotFound
from backup_api.models import (
    Database,
    PreviewDelete,
    PreviewKeep,
    RetentionPolicy,
    RetentionPolicyBody,
    RetentionPreview,
    utcnow,
)
from backup_api.retention.policy import Policy
from backup_api.retention.sweep import SAVED, RetentionSweeper

NO_POLICY = "Aucune politique de rétention pour cette base de données"


def policy_from_body(body: RetentionPolicyBody) -> Policy:
    return Policy(**body.model_dump())


async def get_policy(*, session: AsyncSession, database: Database) -> RetentionPolicy:
    policy = await session.get(RetentionPolicy, database.id)
    if policy is None:
        raise NotFound(NO_POLICY)
    return policy


async def put_policy(
    *, session: AsyncSession, database: Database, body: RetentionPolicyBody
) -> RetentionPolicy:
    """Create or replace the database's policy (omitted counts are 0)."""
    assert database.id is not None
    policy = await session.get(RetentionPolicy, database.id)
    if policy is None:
        policy = RetentionPolicy(database_id=database.id)
    for name, value in body.model_dump().items():
        setattr(policy, name, value)
    policy.updated_at = utcnow()
    session.add(policy)
    await session.flush()
    return policy


async def delete_policy(*, session: AsyncSession, database: Database) -> None:
    policy = await get_policy(session=session, database=database)
    await session.delete(policy)
    await session.flush()


async def preview(
    *,
    session: AsyncSession,
    sweeper: RetentionSweeper,
    database: Database,
    body: RetentionPolicyBody | None,
) -> RetentionPreview:
    """What the next sweep would do, under ``body`` or else the saved policy."""
    policy = SAVED if body is None else policy_from_body(body)
    plan = await sweeper.plan(session, database.id, policy)
    return RetentionPreview(
        keep=[PreviewKeep(backup_id=k.backup_id, reasons=list(k.reasons)) for k in plan.keep],
        delete=[
            PreviewDelete(backup_id=d.backup_id, created_at=d.created_at, reason=d.reason)
            for d in plan.delete
        ],
    )
