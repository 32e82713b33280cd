"""What every dashboard page shares: the templates and their rendering (with the CSRF
token), the route class that turns errors into French pages and adds the security headers,
the signed-in account as a dependency, and the checked form."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from backup_api import logcontext
from backup_api.dashboard import session, views
from backup_api.exceptions import AppError, BadRequest, NotFound, validation_message
from backup_api.principals import Principal
from backup_api.state import AppState

logger = logging.getLogger("backup_api.errors")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
#: Pages draw only from this origin: no inline script or style, no frame, forms post here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
CSRF_REFUSED = "Jeton CSRF absent ou invalide: rechargez la page et recommencez"

ENVIRONMENT = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.globals.update(
    size=views.size,
    duration=views.duration,
    when=views.when,
    status_of=views.status_of,
    status_label=views.status_label,
    trigger_labels=views.TRIGGER_LABELS,
)


def security_headers(response: Response) -> None:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"


def render(
    request: Request, template: str, context: Mapping[str, Any], status_code: int = 200
) -> HTMLResponse:
    state: AppState = request.app.state.backup_api
    seed = session.csrf_seed(request)
    visitor = None
    if seed is None:
        # A first visit: the sign-in form's CSRF token needs a value to be bound to.
        visitor = seed = session.new_visitor_id()
    now = datetime.now(UTC)
    body = ENVIRONMENT.get_template(template).render(
        request=request,
        csrf=session.csrf_token(state, seed),
        csrf_field=session.CSRF_FIELD,
        user=getattr(request.state, "principal", None),
        age=lambda instant: views.age(instant, now),
        **context,
    )
    response = HTMLResponse(body, status_code=status_code)
    if visitor is not None:
        session.set_cookie(request, response, session.ANONYMOUS_COOKIE, visitor, 86400)
    return response


class DashboardRoute(APIRoute):
    """A dashboard route: errors become pages (or fragments for htmx) in French with the
    API's status, a missing session sends the browser to the sign-in page, and every
    answer carries the dashboard's Content-Security-Policy."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except session.LoginRequired:
                response = to_login(request)
            except session.CsrfRefused:
                response = error_page(request, 403, CSRF_REFUSED)
            except AppError as exc:
                if exc.status_code >= 500:
                    logger.error("application error: %s", exc.message)
                response = error_page(request, exc.status_code, exc.message)
            except RequestValidationError as exc:
                response = error_page(request, 400, validation_message(exc.errors()))
            renewed = getattr(request.state, "renewed_session", None)
            if renewed is not None:
                state: AppState = request.app.state.backup_api
                max_age = state.settings.jwt_expire_minutes * 60
                session.set_cookie(request, response, session.SESSION_COOKIE, renewed, max_age)
            security_headers(response)
            return response

        return route


def to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):
        # A fragment's poll whose session ended: htmx loads the sign-in page as a whole,
        # instead of following a redirect and swapping that page into the fragment.
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


def error_page(request: Request, status_code: int, message: str) -> Response:
    template = "_error.html" if request.headers.get("hx-request") else "error.html"
    return render(request, template, {"message": message}, status_code)


async def signed_in(request: Request) -> Principal:
    state: AppState = request.app.state.backup_api
    principal = await session.principal(request, state)
    if principal is None:
        raise session.LoginRequired()
    request.state.principal = principal
    # The request's log lines and audit entries name the account, as the API's do.
    logcontext.set_user(principal.id)
    request.state.renewed_session = session.renewal(request, state, principal)
    return principal


User = Depends(signed_in)


async def posted(request: Request, state: AppState) -> dict[str, str]:
    """The form's fields, once its CSRF token is checked."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    session.check_csrf(request, state, fields.pop(session.CSRF_FIELD, None))
    return fields


def model(model: type[M], values: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc.errors())) from None


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"Données invalides: {name}: entier attendu") from None


async def optional(work: Awaitable[T]) -> T | None:
    try:
        return await work
    except NotFound:
        return None
