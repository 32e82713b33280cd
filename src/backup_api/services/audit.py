"""The audit trail as admins read it: filtered, newest first, a page at a time."""

from __future__ import annotations

from datetime import UTC, datetime

from backup_api.audit import AuditWriter
from backup_api.db import Metadata
from backup_api.models import AuditEventPublic
from backup_api.repositories import audit as audit_records


def _utc(value: datetime | None) -> datetime | None:
    """A bound as stored (UTC); one given without an offset is read as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def list_entries(
    *,
    metadata: Metadata,
    writer: AuditWriter,
    user_id: int | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> list[AuditEventPublic]:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        return []  # an empty window: nothing happened in it
    # What was recorded before this request (the writer stores in the background) is in
    # the answer.
    await writer.flush()
    rows = await metadata.read(
        lambda c: audit_records.page(
            c,
            user_id=user_id,
            action=action,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    )
    return [
        AuditEventPublic(
            id=row.id,
            time=row.time,
            user_id=row.user_id,
            client=row.client,
            request_id=row.request_id,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            outcome=row.outcome,
            details=row.details or {},
        )
        for row in rows
    ]
