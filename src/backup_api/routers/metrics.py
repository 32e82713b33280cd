"""GET /metrics: Prometheus' text format, for a scraper holding the metrics token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from backup_api.deps import StateDep
from backup_api.services import metrics as metrics_service

# Not in the OpenAPI document: the body is not JSON, and the caller is a scraper holding
# the operator's token, not an account.
router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request, state: StateDep) -> Response:
    """The service's metrics (Prometheus text format)."""
    metrics_service.check_token(state.settings, request.headers.get("authorization"))
    body = await state.metrics.render(state)
    # The classic text format (0.0.4): what every Prometheus version reads; the names here
    # need none of 1.0.0's escaping.
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
