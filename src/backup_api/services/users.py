"""Accounts: registration, login, and the admin's user management."""

from __future__ import annotations

import anyio
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api import audit, security
from backup_api.config import Settings
from backup_api.db import after_commit
from backup_api.exceptions import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from backup_api.models import (
    FIRST_ADMIN,
    Bootstrap,
    PasswordChange,
    Role,
    User,
    UserRegister,
    canonical_email,
    new_token_key,
    utcnow,
)
from backup_api.principals import Principal, PrincipalCache
from backup_api.services import api_tokens
from backup_api.throttle import LoginThrottle

INVALID_CREDENTIALS = "Email ou mot de passe incorrect"


async def _count_users(session: AsyncSession) -> int:
    result = await session.exec(select(func.count()).select_from(User))
    return int(result.one())


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.exec(select(User).where(User.email == canonical_email(email)))
    return result.first()


async def _claim(session: AsyncSession, step: str) -> bool:
    """Take a one-time step for this transaction, or learn that someone already has.

    The row's primary key decides between concurrent claimants, whatever process they run
    in: the later insert waits for the earlier transaction and fails if it committed.
    """
    session.add(Bootstrap(step=step))
    try:
        await session.flush()
    except IntegrityError:
        return False
    return True


ADMIN_ONLY = "Seul un administrateur peut créer un compte administrateur"


async def register(
    *, session: AsyncSession, settings: Settings, data: UserRegister, caller: Principal | None
) -> User:
    caller_is_admin = caller is not None and caller.is_admin
    first_account = await _count_users(session) == 0
    if not settings.allow_registration and not caller_is_admin and not first_account:
        raise Forbidden("Les inscriptions sont fermées")
    self_made_admin = data.role is Role.ADMIN and not caller_is_admin
    if self_made_admin and not first_account:
        raise Forbidden(ADMIN_ONLY)
    if await get_by_email(session, data.email) is not None:
        raise Conflict("Un compte existe déjà avec cet email")
    password_hash = await anyio.to_thread.run_sync(security.hash_password, data.password)
    # Several requests may all have seen no account yet: only one gets to be the first admin.
    if self_made_admin and not await _claim(session, FIRST_ADMIN):
        raise Forbidden(ADMIN_ONLY)
    user = User(email=data.email, password_hash=password_hash, role=data.role.value)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("Un compte existe déjà avec cet email") from None
    return user


async def authenticate(
    *,
    session: AsyncSession,
    throttle: LoginThrottle,
    email: str,
    password: str,
    client: str | None,
    via: str,
) -> User:
    """The account of ``email`` if ``password`` is its own; throttled and audited.

    ``via`` names the route in the audit trail (``login``, ``token``).
    """
    email = canonical_email(email)
    user = await get_by_email(session, email)
    await _check_password(
        throttle=throttle,
        email=email,
        user=user,
        password=password,
        client=client,
        action=audit.LOGIN,
        refusal=Unauthorized(INVALID_CREDENTIALS),
        via=via,
    )
    assert user is not None
    audit.record(audit.LOGIN, audit.SUCCESS, client=client, user_id=user.id, via=via)
    return user


async def _check_password(
    *,
    throttle: LoginThrottle,
    email: str,
    user: User | None,
    password: str,
    client: str | None,
    action: str,
    refusal: AppError,
    **details: str,
) -> None:
    """Raise ``refusal`` unless ``password`` is ``user``'s; every guess of a password goes
    through here, so that each counts against the same limits and leaves the same trail
    (the caller records the success, once its action is done)."""
    user_id = user.id if user is not None else None
    retry_after = throttle.retry_after(email, client)
    if retry_after:
        audit.record(action, audit.THROTTLED, client=client, user_id=user_id, **details)
        raise TooManyRequests(retry_after=retry_after)
    # Unknown email and wrong password take the same path, the same time, the same answer.
    valid = await anyio.to_thread.run_sync(
        security.verify_password, password, user.password_hash if user else None
    )
    if user is None or not valid:
        throttle.record_failure(email, client)
        audit.record(
            action,
            audit.FAILURE,
            client=client,
            user_id=user_id,
            email=None if user is not None else audit.loggable_email(email),
            **details,
        )
        raise refusal
    throttle.record_success(email, client)


# 403, not 401: the token is good (a client must not drop it), and the body is well
# formed; the account refuses the change.
WRONG_CURRENT_PASSWORD = "Mot de passe actuel incorrect"  # noqa: S105 (a message)


async def change_password(
    *,
    session: AsyncSession,
    throttle: LoginThrottle,
    principals: PrincipalCache,
    user: User,
    data: PasswordChange,
    client: str | None,
) -> int:
    """Check the current password, store the new one and end every other token of the
    account (and its personal API tokens unless kept). Returns how many of those ended."""
    await _check_password(
        throttle=throttle,
        email=user.email,
        user=user,
        password=data.current_password,
        client=client,
        action=audit.PASSWORD_CHANGE,
        refusal=Forbidden(WRONG_CURRENT_PASSWORD),
    )
    user.password_hash = await anyio.to_thread.run_sync(security.hash_password, data.new_password)
    await rotate_token_key(session, user, principals=principals)
    assert user.id is not None
    revoked = 0
    if not data.keep_api_tokens:
        revoked = await api_tokens.revoke_all(
            session, user.id, client=client, reason=audit.PASSWORD_CHANGE
        )
    user_id = user.id
    after_commit(
        session,
        lambda: audit.record(audit.PASSWORD_CHANGE, audit.SUCCESS, client=client, user_id=user_id),
    )
    return revoked


async def list_users(*, session: AsyncSession, limit: int, offset: int) -> list[User]:
    result = await session.exec(select(User).order_by(col(User.id)).limit(limit).offset(offset))
    return list(result.all())


async def get_user(*, session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("Utilisateur introuvable")
    return user


async def _admin_count(session: AsyncSession) -> int:
    result = await session.exec(
        select(func.count()).select_from(User).where(User.role == Role.ADMIN.value)
    )
    return int(result.one())


async def set_role(
    *, session: AsyncSession, principals: PrincipalCache, user: User, role: Role
) -> User:
    if user.role == Role.ADMIN.value and role is Role.USER and await _admin_count(session) <= 1:
        raise Conflict("Impossible de retirer le dernier administrateur")
    if user.role == role.value:
        return user
    user.role = role.value
    await rotate_token_key(session, user, principals=principals)
    return user


async def rotate_token_key(
    session: AsyncSession, user: User, *, principals: PrincipalCache | None
) -> None:
    """Give the account a new token key: every token issued before stops working at once.

    For role and password changes. ``principals`` is the running service's cache of
    callers (``state.principals``); ``None`` only outside the service (the CLI), whose
    change the service sees when its cached entry expires.
    """
    user.token_key = new_token_key()
    user.updated_at = utcnow()
    session.add(user)
    await session.flush()
    if principals is not None:
        forget_principal(session, principals, user)


def forget_principal(session: AsyncSession, principals: PrincipalCache, user: User) -> None:
    """Drop the cached caller now and again once committed: a request that read the old
    row in between must not keep it."""
    assert user.id is not None
    user_id = user.id
    principals.forget(user_id)
    after_commit(session, lambda: principals.forget(user_id))


async def create_admin(*, session: AsyncSession, email: str, password: str) -> User:
    data = UserRegister(email=email, password=password, role=Role.ADMIN)
    existing = await get_by_email(session, data.email)
    password_hash = await anyio.to_thread.run_sync(security.hash_password, data.password)
    # The instance has its first admin now: registration no longer offers the role.
    if await session.get(Bootstrap, FIRST_ADMIN) is None:
        session.add(Bootstrap(step=FIRST_ADMIN))
    if existing is not None:
        existing.role = Role.ADMIN.value
        existing.password_hash = password_hash
        # New password and role: the tokens issued before end.
        await rotate_token_key(session, existing, principals=None)
        return existing
    user = User(email=data.email, password_hash=password_hash, role=Role.ADMIN.value)
    session.add(user)
    await session.flush()
    return user


def ensure_not_self(caller: Principal, target: User) -> None:
    if caller.id == target.id:
        raise Conflict("Un administrateur ne peut pas se supprimer lui-même")
