"""Liveness and readiness: a bare status for anyone, the details for administrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backup_api.deps import BearerDep, StateDep, client_address, principal_or_none
from backup_api.models import HealthResponse, HealthStatus
from backup_api.routers.responses import errors
from backup_api.services import health as health_service

router = APIRouter(tags=["health"])

_BODIES = {
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/HealthStatus"},
                    {"$ref": "#/components/schemas/HealthResponse"},
                ]
            }
        }
    }
}


@router.get(
    "/health",
    response_model=HealthStatus | HealthResponse,
    summary="Service health",
    responses={
        200: {"description": "Up; the details need an admin token"},
        503: {"description": "The metadata database is unreachable", **_BODIES},
        **errors(),
    },
)
async def health(request: Request, state: StateDep, token: BearerDep) -> JSONResponse:
    """`{"status": "ok"}` (200) or `{"status": "degraded"}` (503); with an admin token, also
    the metadata database, dump tools with paths and versions, free space, the job queue
    and the scheduler's last pass."""
    caller = await principal_or_none(state, token, client_address(request))
    if caller is not None and caller.is_admin:
        healthy, report = await health_service.report(state)
        return JSONResponse(report.model_dump(), status_code=200 if healthy else 503)
    healthy, public = await health_service.status(state)
    return JSONResponse(public.model_dump(), status_code=200 if healthy else 503)
