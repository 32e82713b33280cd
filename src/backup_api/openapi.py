"""The OpenAPI document: FastAPI's, corrected to say what the server does.

FastAPI documents a 422 the API never sends, cannot know the configured page size, marks a
route whose token is optional as requiring one, and knows nothing of the errors a route
shares with others of its kind. Those are fixed here, once, when the document is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts

from backup_api.config import Settings
from backup_api.deps import bearer_scheme, current_user, optional_user
from backup_api.routers.responses import HEADLINES, ErrorCase, examples

ERROR_SCHEMA = "#/components/schemas/ErrorResponse"
REQUEST_ID = "0123456789abcdef0123456789abcdef"
INTERNAL_ERROR = ErrorCase(
    500,
    f"Erreur interne du serveur (requête {REQUEST_ID})",
    "an unexpected failure; the log holds the traceback under this request id",
)
NO_TOKEN = ErrorCase(401, "Authentification requise", "no `Authorization: Bearer` token")
BAD_TOKEN = ErrorCase(
    401,
    "Token invalide ou expiré",
    "the token is malformed, expired or forged, or its account was deleted",
)
INVALID_JSON = ErrorCase(400, "Données invalides: JSON invalide", "the body is not JSON")
BODY_TOO_LARGE = ErrorCase(
    400,
    "Données invalides: corps de requête trop volumineux",
    "the body is larger than `BACKUP_API_MAX_BODY_BYTES`",
)
#: Beside the OAuth2 password flow, the same bearer token pasted as is: Swagger UI's
#: Authorize then also takes a personal API token, or one from ``/auth/login``.
PLAIN_BEARER = "HTTPBearer"
PLAIN_BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A token as is: the `token` answered by `POST /auth/login`, the "
    "`access_token` of `POST /auth/token`, or a personal API token (`bak_...`) from "
    "`POST /api/tokens`",
}
HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def install(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI, settings: Settings) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    oauth2 = bearer_scheme.scheme_name
    schema["components"].setdefault("securitySchemes", {})[PLAIN_BEARER] = PLAIN_BEARER_SCHEME
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    optional_auth = set(_optional_auth_operations(app))
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if {oauth2: []} in operation.get("security", []):
                operation["security"] = [{oauth2: []}, {PLAIN_BEARER: []}]
            if (method, path) in optional_auth:
                # The token is optional (an admin's lets them create admins): a client
                # without one is not refused for lacking it.
                operation["security"] = [{}, *operation.get("security", [])]
            _page_size(operation, settings.max_page_size)
            shared = _shared_errors(operation, components, settings.max_page_size)
            for case in shared:
                _add_case(responses, case)
            for status, response in responses.items():
                if _is_error(response) and int(status) in HEADLINES:
                    _describe(int(status), response)
            operation["responses"] = dict(sorted(responses.items()))
    return schema


def _dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _dependencies(dependency)


def _optional_auth_operations(app: FastAPI) -> Iterator[tuple[str, str]]:
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if not isinstance(dependant, Dependant) or route.path_format is None:
            continue
        calls = set(_dependencies(dependant))
        if (optional_user in calls or bearer_scheme in calls) and current_user not in calls:
            for method in route.methods or ():
                yield method.lower(), route.path_format


def _page_size(operation: dict[str, Any], maximum: int) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter["name"] == "limit":
            # ``int | None`` in the code, where None means "not given": in a query string
            # that is an absent parameter, not a null one.
            schema = parameter["schema"]
            integer = next(b for b in schema.get("anyOf", [schema]) if b.get("type") == "integer")
            parameter["schema"] = {**integer, "maximum": maximum, "title": schema.get("title")}


def _shared_errors(
    operation: dict[str, Any], components: dict[str, Any], max_page_size: int
) -> Iterator[ErrorCase]:
    security = operation.get("security") or []
    if security and {} not in security:
        yield NO_TOKEN
    if security:
        yield BAD_TOKEN
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            yield ErrorCase(
                400, f"Données invalides: {name}: entier attendu", f"`{name}` is not an integer"
            )
        elif parameter["in"] == "query" and name == "limit":
            yield ErrorCase(
                400,
                f"Données invalides: limit: valeur trop grande (maximum {max_page_size})",
                "`limit` is above `BACKUP_API_MAX_PAGE_SIZE`",
            )
    body = _body_schema(operation, components)
    if body is not None:
        yield INVALID_JSON
        required = body.get("required", [])
        if required:
            field = required[0]
            yield ErrorCase(
                400, f"Données invalides: {field}: champ requis", f"`{field}` is missing"
            )
        if body.get("additionalProperties") is False:
            yield ErrorCase(
                400,
                "Données invalides: user_id: champ non autorisé",
                "the body has a field this route does not take",
            )
    # Checked before any route, on every request.
    yield BODY_TOO_LARGE
    yield INTERNAL_ERROR


def _body_schema(operation: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema: dict[str, Any] = content.get("schema", {})
    for branch in schema.get("anyOf", [schema]):
        ref = branch.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            found: dict[str, Any] = components[ref.rsplit("/", 1)[1]]
            return found
    return schema


def _add_case(responses: dict[str, Any], case: ErrorCase) -> None:
    response = responses.setdefault(
        str(case.status),
        {
            "description": HEADLINES[case.status],
            "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA}}},
        },
    )
    content = response.setdefault("content", {}).setdefault("application/json", {})
    existing = content.setdefault("examples", {})
    for key, example in examples([case]).items():
        existing.setdefault(key, example)


def _is_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == ERROR_SCHEMA)


def _describe(status: int, response: dict[str, Any]) -> None:
    """The headline, then each example's message and when it is sent."""
    content = response.get("content", {}).get("application/json", {})
    lines = [
        f"- `{example['value']['error']}`: {example['summary']}"
        for example in content.get("examples", {}).values()
        if isinstance(example.get("value"), dict) and "error" in example["value"]
    ]
    response["description"] = HEADLINES[status] + ("\n\n" + "\n".join(lines) if lines else "")
    if status in HEADERS:
        response.setdefault("headers", {}).update(HEADERS[status])
