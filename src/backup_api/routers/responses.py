"""OpenAPI documentation of the error responses, shared by every router."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from backup_api.models import ErrorResponse

_DESCRIPTIONS = {
    400: "Données invalides",
    401: "Non authentifié",
    403: "Accès non autorisé",
    404: "Ressource introuvable",
    409: "Conflit",
    429: "Trop de requêtes",
    500: "Erreur serveur",
    507: "Espace de stockage insuffisant",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: 400 and 500 always, plus ``codes``."""
    return {
        code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]}
        for code in sorted({400, 500, *codes})
    }


AUTHENTICATED = (401, 403, 429)


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """The model serialized once; returned as is, FastAPI would validate it a second time
    (it matters on the hot listing routes)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
