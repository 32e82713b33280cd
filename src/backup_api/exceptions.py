"""The one error type of the service and the handlers that render it.

Tree::

    AppError (500)
    ├── BadRequest (400)
    │   └── UnsupportedDatabaseType (400)
    ├── Unauthorized (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    ├── PayloadTooLarge (400, as the contract wants every bad body to be a 400)
    ├── TooManyRequests (429)
    └── InsufficientStorage (507)

Services raise these; nothing below the routers raises ``HTTPException``. Every error the
client sees is ``{"error": "<message in French>"}``; unexpected exceptions become a generic
500 with a request id, and the traceback goes to the log only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from backup_api.dumpers.registry import supported_types

logger = logging.getLogger("backup_api.errors")

METADATA_UNAVAILABLE = "Base de données des métadonnées indisponible, réessayez dans un instant"


class AppError(Exception):
    status_code = 500
    default_message = "Erreur interne du serveur"

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ):
        self.message = message or self.default_message
        self.headers = headers
        # Rendered beside "error", for a client to act on without parsing the message.
        self.details = details
        super().__init__(self.message)


class BadRequest(AppError):
    status_code = 400
    default_message = "Données invalides"


class UnsupportedDatabaseType(BadRequest):
    def __init__(self, db_type: str):
        super().__init__(
            f"type de base de données non supporté: {db_type}",
            details={"supported_types": supported_types()},
        )


class PayloadTooLarge(BadRequest):
    default_message = "Données invalides: corps de requête trop volumineux"


class Unauthorized(AppError):
    status_code = 401
    default_message = "Non authentifié"

    def __init__(self, message: str | None = None):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403
    default_message = "Accès non autorisé"


class NotFound(AppError):
    status_code = 404
    default_message = "Ressource introuvable"


class Conflict(AppError):
    status_code = 409
    default_message = "Conflit"


class TooManyRequests(AppError):
    status_code = 429
    default_message = "Trop de tentatives, réessayez plus tard"

    def __init__(self, message: str | None = None, *, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class InsufficientStorage(AppError):
    """The storage quota of the account, or the free-space reserve of the backup disk, is
    reached (507, as WebDAV answers a full quota)."""

    status_code = 507
    default_message = "Espace de stockage insuffisant"


class StorageUnavailable(AppError):
    """A storage (an S3 endpoint) that holds what was asked for did not answer as it
    should: the service stands between the client and it (502)."""

    status_code = 502
    default_message = "Stockage distant indisponible"


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse({"error": message, **(details or {})}, status_code=status, headers=headers)


def _field_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "corps"


_VALIDATION_MESSAGES = {
    "missing": "champ requis",
    "extra_forbidden": "champ non autorisé",
    "json_invalid": "JSON invalide",
    "model_attributes_type": "objet JSON attendu",
    "dict_type": "objet JSON attendu",
    "string_type": "chaîne attendue",
    "int_type": "entier attendu",
    "int_parsing": "entier attendu",
    "int_from_float": "entier attendu",
    "bool_parsing": "booléen attendu",
    "bool_type": "booléen attendu",
    "string_too_long": "trop long",
    "string_too_short": "trop court",
    "greater_than_equal": "valeur trop petite",
    "less_than_equal": "valeur trop grande",
    "greater_than": "valeur trop petite",
    "less_than": "valeur trop grande",
    "literal_error": "valeur non autorisée",
    "enum": "valeur non autorisée",
    "value_error": "valeur invalide",
}


def _detail(error: Any) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "string_too_short" and "min_length" in ctx:
        return f"au moins {ctx['min_length']} caractères"
    if kind == "string_too_long" and "max_length" in ctx:
        return f"au plus {ctx['max_length']} caractères"
    if kind == "too_long" and "max_length" in ctx:
        return f"au plus {ctx['max_length']} éléments"
    if kind == "value_error":
        # Our own validators raise ValueError with a French message: show it as is.
        return str(ctx.get("error", "")) or _VALIDATION_MESSAGES["value_error"]
    return _VALIDATION_MESSAGES.get(kind, "valeur invalide")


def validation_message(errors: Sequence[Any]) -> str:
    """French message naming every invalid field, e.g. ``Données invalides: port: ...``.

    Missing fields come first, together (``champs requis: name, host``), so a client
    learns them all from one answer; then each other invalid field, once.
    """
    if not errors:
        return "Données invalides"
    first = errors[0]
    loc = first.get("loc", ())
    kind = first.get("type", "")
    if kind == "json_invalid":
        return "Données invalides: JSON invalide"
    if kind in ("model_attributes_type", "dict_type") and len(loc) <= 1:
        return "Données invalides: objet JSON attendu"
    missing: list[str] = []
    for error in errors:
        field = _field_path(error.get("loc", ()))
        if error.get("type") == "missing" and field not in missing:
            missing.append(field)
    parts = []
    if len(missing) == 1:
        parts.append(f"{missing[0]}: {_VALIDATION_MESSAGES['missing']}")
    elif missing:
        parts.append(f"champs requis: {', '.join(missing)}")
    seen = set(missing)
    for error in errors:
        field = _field_path(error.get("loc", ()))
        if field not in seen:
            seen.add(field)
            parts.append(f"{field}: {_detail(error)}")
    return "Données invalides: " + "; ".join(parts)


def allowed_methods(request: Request) -> str:
    """Every method the request's path answers to. Starlette's 405 names only those of the
    first route matching the path, and a path often has one route per method."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.error("application error: %s", exc.message)
        return error_response(exc.status_code, exc.message, exc.headers, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {
            404: "Ressource introuvable",
            405: "Méthode non autorisée",
            401: "Non authentifié",
            403: "Accès non autorisé",
        }
        message = messages.get(exc.status_code, str(exc.detail))
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return error_response(exc.status_code, message, headers)

    async def _metadata_unavailable(request: Request) -> JSONResponse | None:
        """503 when the metadata database does not answer: not this request's fault,
        every request fails alike until it is back, and the client should try again
        (the service reconnects by itself)."""
        state = getattr(request.app.state, "backup_api", None)
        if state is None or await state.metadata.answers():
            return None
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        logger.warning(
            "%s %s: the metadata database does not answer (request %s)",
            request.method,
            request.url.path,
            request_id,
        )
        return error_response(
            503, METADATA_UNAVAILABLE, {"Retry-After": "5", "X-Request-ID": request_id}
        )

    async def _metadata_or_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Registered for the classes a lost database connection raises (the driver's
        # errors, and OSError from a refused connection): ExceptionMiddleware answers
        # them and the connection lives on, where the catch-all below answers and then
        # closes it (Starlette re-raises to the server after it).
        return await _metadata_unavailable(request) or await _unexpected(request, exc)

    app.add_exception_handler(SQLAlchemyError, _metadata_or_unexpected)
    app.add_exception_handler(OSError, _metadata_or_unexpected)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Any other class too may come of a lost database (a driver error raised as is).
        unavailable = await _metadata_unavailable(request)
        if unavailable is not None:
            return unavailable
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        # The traceback goes to the log; the exception text may hold data we must not echo.
        logger.error(
            "unexpected error on %s %s (request %s)",
            request.method,
            request.url.path,
            request_id,
            exc_info=exc,
        )
        return error_response(
            500, f"Erreur interne du serveur (requête {request_id})", {"X-Request-ID": request_id}
        )
