"""The dashboard's session: a cookie holding the same signed token ``/auth/login`` gives
(renewed past half its lifetime, ended in the service at sign-out), and the CSRF token
every state-changing form or htmx request must send back.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
it) and Secure when the request came over HTTPS (directly, or through a proxy listed in
``BACKUP_API_TRUSTED_PROXIES``, whose ``X-Forwarded-Proto`` uvicorn then believes). The
API never reads it: ``/api`` routes take a bearer token only, so a cookie cannot authorize
an API call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from fastapi import Request, Response

from backup_api import deps
from backup_api.principals import Principal
from backup_api.security import InvalidTokenError, create_access_token
from backup_api.services import api_tokens
from backup_api.state import AppState

SESSION_COOKIE = "backup_api_session"
#: Before sign-in, the CSRF token is bound to this random value instead of the session.
ANONYMOUS_COOKIE = "backup_api_visitor"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No valid session: the dashboard sends the browser to the sign-in page."""


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token."""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def visitor_id(request: Request) -> str | None:
    value = request.cookies.get(ANONYMOUS_COOKIE)
    return value if value and len(value) <= 64 else None


def new_visitor_id() -> str:
    return secrets.token_urlsafe(24)


async def principal(request: Request, state: AppState) -> Principal | None:
    """The signed-in account, or None (no cookie, or one that no longer holds)."""
    token = request.cookies.get(SESSION_COOKIE)
    # Only the tokens this dashboard sets: a personal API token is for scripts.
    if not token or len(token) > 4096 or api_tokens.is_api_token(token):
        return None
    if token in state.ended_sessions:
        return None
    return await deps.principal_or_none(state, token, deps.client_address(request))


def end(request: Request, state: AppState) -> None:
    """Sign-out: the session's token is refused from now on, even if a copy of the cookie
    was kept; entries past their token's expiry are dropped on the way."""
    token = request.cookies.get(SESSION_COOKIE)
    now = time.time()
    for ended, expires in list(state.ended_sessions.items()):
        if expires <= now:
            del state.ended_sessions[ended]
    if not token or len(token) > 4096:
        return
    try:
        expires_at = state.tokens.decode(token).expires_at
    except InvalidTokenError:
        return
    state.ended_sessions[token] = expires_at


def renewal(request: Request, state: AppState, principal: Principal) -> str | None:
    """A new token for a session past half its lifetime, so that a person at work is not
    signed out in the middle of it; None while the current one has time left."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        expires_at = state.tokens.decode(token).expires_at
    except InvalidTokenError:
        return None
    lifetime = state.settings.jwt_expire_minutes * 60
    if expires_at - time.time() > lifetime / 2:
        return None
    return create_access_token(
        principal.id,
        state.keys.jwt_secret,
        state.settings.jwt_expire_minutes,
        token_key=principal.token_key,
    )


def csrf_token(state: AppState, seed: str) -> str:
    """The CSRF token bound to ``seed`` (the session token, or the visitor id): an HMAC
    under the service's key, so a page of another origin can neither read nor forge it."""
    key = hashlib.sha256(b"dashboard-csrf:" + state.keys.jwt_secret.encode()).digest()
    return hmac.new(key, seed.encode(), hashlib.sha256).hexdigest()


def csrf_seed(request: Request) -> str | None:
    """Signed in, the account and its token key (a session's renewal keeps the forms
    already shown valid; a password change, which ends sessions, ends them too); before,
    the visitor's random cookie."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return f"account:{principal.id}:{principal.token_key}"
    return request.cookies.get(SESSION_COOKIE) or visitor_id(request)


def check_csrf(request: Request, state: AppState, sent: str | None) -> None:
    seed = csrf_seed(request)
    sent = sent or request.headers.get(CSRF_HEADER)
    if seed is None or not sent or not hmac.compare_digest(csrf_token(state, seed), sent):
        raise CsrfRefused()
