"""Registration and login."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from backup_api.deps import CurrentUser, OptionalUser, StateDep
from backup_api.models import (
    LoginResponse,
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
    return UserEnvelope(message="Utilisateur créé avec succès", user=_public(user))


BAD_CREDENTIALS = ErrorCase(
    401, users_service.INVALID_CREDENTIALS, "unknown e-mail or wrong password (the same answer)"
)


@router.post(
    "/login",
    response_model=LoginResponse,
    summary="Log in",
    responses=errors(BAD_CREDENTIALS, LOGIN_THROTTLED),
)
async def login(data: UserLogin, request: Request, state: StateDep) -> LoginResponse:
    """Exchange email and password for a JWT bearer token."""
    client = request.client.host if request.client else None
    user = await users_service.authenticate(
        metadata=state.metadata,
        throttle=state.throttle,
        email=data.email,
        password=data.password,
        client=client,
    )
    minutes = state.settings.jwt_expire_minutes
    return LoginResponse(
        token=create_access_token(
            user.id, state.keys.jwt_secret, minutes, token_key=user.token_key
        ),
        expires_in=minutes * 60,
        user=_public(user),
    )


@router.get("/me", response_model=UserItem, summary="Current account", responses=errors())
async def me(caller: CurrentUser, state: StateDep) -> UserItem:
    """The account the token belongs to."""
    user = await users_service.get_user(metadata=state.metadata, user_id=caller.id)
    return UserItem(user=_public(user))
