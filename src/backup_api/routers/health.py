"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backup_api.deps import StateDep
from backup_api.models import HealthResponse
from backup_api.routers.responses import errors
from backup_api.services import health as health_service

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Service health",
    responses={
        503: {"model": HealthResponse, "description": "The metadata database is unreachable"},
        **errors(),
    },
)
async def health(state: StateDep) -> JSONResponse:
    """Metadata database, dump tools with versions, free space on the backup volume."""
    healthy, body = await health_service.report(state)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
