"""The audit trail, for administrators only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backup_api.deps import AdminUser, PageDep, StateDep
from backup_api.models import MAX_ID, AuditList, IsoDateTime
from backup_api.routers.responses import ADMIN_ONLY, errors
from backup_api.services import audit as audit_service

router = APIRouter(prefix="/api/audit", tags=["audit (admin)"])


@router.get(
    "",
    response_model=AuditList,
    summary="Read the audit trail",
    responses=errors(ADMIN_ONLY),
)
async def list_audit(
    _: AdminUser,
    state: StateDep,
    page: PageDep,
    user_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only what this account did")
    ] = None,
    action: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[a-z_]+$", description="Only this action (`login`...)"),
    ] = None,
    since: Annotated[
        IsoDateTime | None,
        Query(description="Only entries at or after this time (ISO 8601; no offset: UTC)"),
    ] = None,
    until: Annotated[
        IsoDateTime | None,
        Query(description="Only entries at or before this time (ISO 8601; no offset: UTC)"),
    ] = None,
) -> AuditList:
    """Who did what, from where, and how it ended: logins (failed and throttled ones
    too), registrations, what was created, changed, deleted, downloaded, verified or
    restored, and role and password changes; newest first."""
    entries = await audit_service.list_entries(
        metadata=state.metadata,
        writer=state.audit,
        user_id=user_id,
        action=action,
        since=since,
        until=until,
        limit=page.limit,
        offset=page.offset,
    )
    return AuditList(audit=entries)
