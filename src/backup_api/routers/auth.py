"""Registration, login (JSON, or the OAuth2 password flow for Swagger UI) and password
change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status

from backup_api import audit
from backup_api.deps import CurrentUser, OptionalUser, StateDep, client_address
from backup_api.models import (
    LoginResponse,
    OAuth2Token,
    PasswordChange,
    PasswordChanged,
    TokenRequest,
    UserEnvelope,
    UserItem,
    UserLogin,
    UserPublic,
    UserRegister,
)
from backup_api.repositories import Record
from backup_api.routers.responses import (
    ADMIN_ROLE_REFUSED,
    EMAIL_TAKEN,
    INVALID_EMAIL,
    LOGIN_THROTTLED,
    REGISTRATION_CLOSED,
    SHORT_PASSWORD,
    ErrorCase,
    errors,
)
from backup_api.security import create_access_token
from backup_api.services import users as users_service
from backup_api.state import AppState

router = APIRouter(prefix="/auth", tags=["auth"])


def _public(user: Record) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserEnvelope,
    summary="Create an account",
    responses=errors(
        INVALID_EMAIL, SHORT_PASSWORD, REGISTRATION_CLOSED, ADMIN_ROLE_REFUSED, EMAIL_TAKEN
    ),
)
async def register(data: UserRegister, state: StateDep, caller: OptionalUser) -> UserEnvelope:
    """Create an account (role `admin` only for the first account or by an admin)."""
    user = await users_service.register(
        metadata=state.metadata, settings=state.settings, data=data, caller=caller
    )
    # A self-registration's actor is the new account; an admin's, the admin.
    audit.record(
        audit.REGISTER,
        audit.SUCCESS,
        user_id=caller.id if caller is not None else user.id,
        target_type=audit.USER,
        target_id=user.id,
        role=user.role,
    )
    return UserEnvelope(message="Utilisateur créé avec succès", user=_public(user))


BAD_CREDENTIALS = ErrorCase(
    401, users_service.INVALID_CREDENTIALS, "unknown e-mail or wrong password (the same answer)"
)
MISSING_USERNAME = ErrorCase(
    400, "Données invalides: username: champ requis", "the form has no `username` (the e-mail)"
)
WRONG_GRANT = ErrorCase(
    400, "Données invalides: grant_type: valeur invalide", "`grant_type` is not `password`"
)
WRONG_CURRENT_PASSWORD = ErrorCase(
    403, users_service.WRONG_CURRENT_PASSWORD, "`current_password` is not the account's password"
)
SHORT_NEW_PASSWORD = ErrorCase(
    400, "Données invalides: new_password: au moins 8 caractères", "`new_password` is too short"
)
PASSWORD_THROTTLED = ErrorCase(
    429,
    LOGIN_THROTTLED.message,
    "too many wrong passwords for this account or from this address (the login's limits)",
)


async def _log_in(
    request: Request, state: AppState, email: str, password: str, via: str
) -> tuple[Record, str]:
    """The account and a new token for it: both login routes, one set of checks."""
    user = await users_service.authenticate(
        metadata=state.metadata,
        throttle=state.throttle,
        email=email,
        password=password,
        client=client_address(request),
        via=via,
    )
    return user, _token_for(user, state)


def _token_for(user: Record, state: AppState) -> str:
    return create_access_token(
        user.id, state.keys.jwt_secret, state.settings.jwt_expire_minutes, token_key=user.token_key
    )


@router.post(
    "/login",
    response_model=LoginResponse,
    summary="Log in",
    responses=errors(BAD_CREDENTIALS, LOGIN_THROTTLED),
)
async def login(data: UserLogin, request: Request, state: StateDep) -> LoginResponse:
    """Exchange email and password for a JWT bearer token."""
    user, token = await _log_in(request, state, data.email, data.password, "login")
    return LoginResponse(
        token=token,
        expires_in=state.settings.jwt_expire_minutes * 60,
        user=_public(user),
    )


@router.post(
    "/token",
    response_model=OAuth2Token,
    summary="Log in (OAuth2 password flow)",
    responses=errors(MISSING_USERNAME, WRONG_GRANT, BAD_CREDENTIALS, LOGIN_THROTTLED),
)
async def token(
    data: Annotated[TokenRequest, Form()], request: Request, state: StateDep
) -> OAuth2Token:
    """The same as `POST /auth/login` for OAuth2 clients (Swagger UI's **Authorize**): a form
    (`application/x-www-form-urlencoded`) with `username` (the e-mail) and `password`,
    answered with `access_token`. Throttled with the same counts as `/auth/login`."""
    _, access_token = await _log_in(request, state, data.username, data.password, "token")
    return OAuth2Token(
        access_token=access_token,
        token_type="bearer",  # noqa: S106 (the scheme's name, not a secret)
        expires_in=state.settings.jwt_expire_minutes * 60,
    )


@router.get("/me", response_model=UserItem, summary="Current account", responses=errors())
async def me(caller: CurrentUser, state: StateDep) -> UserItem:
    """The account the token belongs to."""
    user = await users_service.get_user(metadata=state.metadata, user_id=caller.id)
    return UserItem(user=_public(user))


@router.put(
    "/password",
    response_model=PasswordChanged,
    summary="Change one's password",
    responses=errors(SHORT_NEW_PASSWORD, WRONG_CURRENT_PASSWORD, PASSWORD_THROTTLED),
)
async def change_password(
    data: PasswordChange, request: Request, caller: CurrentUser, state: StateDep
) -> PasswordChanged:
    """Check `current_password`, store `new_password` (the rules of registration) and end
    every token of the account issued before, the caller's included: the answer carries a
    new one. Personal API tokens are revoked too unless `keep_api_tokens` is true. The new
    password may be the current one: that just ends the other sessions. A wrong
    `current_password` counts as a failed login (same limits, 429 past them)."""
    user, revoked = await users_service.change_password(
        metadata=state.metadata,
        throttle=state.throttle,
        principals=state.principals,
        user_id=caller.id,
        data=data,
        client=client_address(request),
    )
    return PasswordChanged(
        message="Mot de passe modifié avec succès",
        token=_token_for(user, state),
        expires_in=state.settings.jwt_expire_minutes * 60,
        revoked_api_tokens=revoked,
    )
