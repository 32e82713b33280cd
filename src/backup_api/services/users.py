"""Accounts: registration, login, and the admin's user management."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from backup_api import audit, security
from backup_api.config import Settings
from backup_api.db import Metadata
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
    PasswordChange,
    Role,
    UserRegister,
    canonical_email,
    new_token_key,
    utcnow,
)
from backup_api.principals import Principal, PrincipalCache
from backup_api.repositories import Record, users
from backup_api.repositories import api_tokens as api_token_records
from backup_api.services import api_tokens
from backup_api.throttle import LoginThrottle

INVALID_CREDENTIALS = "Email ou mot de passe incorrect"
ADMIN_ONLY = "Seul un administrateur peut créer un compte administrateur"
EMAIL_TAKEN = "Un compte existe déjà avec cet email"
USER_MISSING = "Utilisateur introuvable"

T = TypeVar("T")


async def register(
    *, metadata: Metadata, settings: Settings, data: UserRegister, caller: Principal | None
) -> Record:
    caller_is_admin = caller is not None and caller.is_admin
    email = canonical_email(data.email)

    def admissible(connection: Connection) -> bool:
        """Whether this is the instance's first account; refusals raise."""
        first_account = users.count(connection) == 0
        if not settings.allow_registration and not caller_is_admin and not first_account:
            raise Forbidden("Les inscriptions sont fermées")
        if data.role is Role.ADMIN and not caller_is_admin and not first_account:
            raise Forbidden(ADMIN_ONLY)
        if users.by_email(connection, email) is not None:
            raise Conflict(EMAIL_TAKEN)
        return first_account

    await metadata.read(admissible)
    self_made_admin = data.role is Role.ADMIN and not caller_is_admin
    # Hashed between the units: no transaction waits on Argon2.
    password_hash = await anyio.to_thread.run_sync(security.hash_password, data.password)

    def insert(connection: Connection) -> Record:
        # Several requests may all have seen no account yet: only one gets to be the first
        # admin.
        if self_made_admin and not users.claim_step(connection, FIRST_ADMIN):
            raise Forbidden(ADMIN_ONLY)
        try:
            return users.insert_user(
                connection, email=data.email, password_hash=password_hash, role=data.role.value
            )
        except IntegrityError:
            raise Conflict(EMAIL_TAKEN) from None

    return await metadata.write(insert)


async def authenticate(
    *,
    metadata: Metadata,
    throttle: LoginThrottle,
    email: str,
    password: str,
    client: str | None,
    via: str,
) -> Record:
    """The account of ``email`` if ``password`` is its own; throttled and audited.

    ``via`` names the route in the audit trail (``login``, ``token``).
    """
    email = canonical_email(email)
    user = await metadata.read(lambda c: users.by_email(c, email))
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
    user: Record | None,
    password: str,
    client: str | None,
    action: str,
    refusal: AppError,
    via: str | None = None,
) -> None:
    """Raise ``refusal`` unless ``password`` is ``user``'s; every guess of a password goes
    through here, so that each counts against the same limits and leaves the same trail
    (the caller records the success, once its action is done)."""
    user_id = user.id if user is not None else None
    retry_after = throttle.retry_after(email, client)
    if retry_after:
        audit.record(action, audit.THROTTLED, client=client, user_id=user_id, via=via)
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
            via=via,
        )
        raise refusal
    throttle.record_success(email, client)


# 403, not 401: the token is good (a client must not drop it), and the body is well
# formed; the account refuses the change.
WRONG_CURRENT_PASSWORD = "Mot de passe actuel incorrect"  # noqa: S105 (a message)


async def change_password(
    *,
    metadata: Metadata,
    throttle: LoginThrottle,
    principals: PrincipalCache,
    user_id: int,
    data: PasswordChange,
    client: str | None,
) -> tuple[Record, int]:
    """Check the current password, store the new one and end every other token of the
    account (and its personal API tokens unless kept). Returns the account as changed and
    how many personal tokens ended."""
    user = await get_user(metadata=metadata, user_id=user_id)
    await _check_password(
        throttle=throttle,
        email=user.email,
        user=user,
        password=data.current_password,
        client=client,
        action=audit.PASSWORD_CHANGE,
        refusal=Forbidden(WRONG_CURRENT_PASSWORD),
    )
    # Hashed between the units: no transaction waits on Argon2.
    password_hash = await anyio.to_thread.run_sync(security.hash_password, data.new_password)
    keep_api_tokens = data.keep_api_tokens

    def work(connection: Connection) -> tuple[Record, list[int]]:
        changed = _new_token_key(connection, user_id, password_hash=password_hash)
        if keep_api_tokens:
            return changed, []
        return changed, api_token_records.delete_of_user(connection, user_id)

    changed, revoked = await changing_principal(metadata, principals, user_id, work)
    api_tokens.audit_revoked(revoked, client=client, user_id=user_id, reason=audit.PASSWORD_CHANGE)
    audit.record(audit.PASSWORD_CHANGE, audit.SUCCESS, client=client, user_id=user_id)
    return changed, len(revoked)


async def list_users(*, metadata: Metadata, limit: int, offset: int) -> list[Record]:
    return await metadata.read(lambda c: users.page(c, limit, offset))


def _existing(user: Record | None) -> Record:
    if user is None:
        raise NotFound(USER_MISSING)
    return user


async def get_user(*, metadata: Metadata, user_id: int) -> Record:
    return _existing(await metadata.read(lambda c: users.get(c, user_id)))


async def changing_principal(
    metadata: Metadata, principals: PrincipalCache, user_id: int, work: Callable[[Connection], T]
) -> T:
    """Run ``work``, a unit that changes what the account's tokens may do (its role, its
    token key, its existence), dropping the cached caller before it and again once it is
    committed: a request that read the old row in between must not keep it. A unit that
    raises commits nothing, and the second drop is not needed then."""
    principals.forget(user_id)
    result = await metadata.write(work)
    principals.forget(user_id)
    return result


def _new_token_key(connection: Connection, user_id: int, **values: object) -> Record:
    """Apply ``values`` with a new token key: every token issued before stops working."""
    changed = users.update_user(
        connection, user_id, token_key=new_token_key(), updated_at=utcnow(), **values
    )
    return _existing(changed)


async def set_role(
    *, metadata: Metadata, principals: PrincipalCache, user_id: int, role: Role
) -> Record:
    def work(connection: Connection) -> Record:
        user = _existing(users.get(connection, user_id))
        if (
            user.role == Role.ADMIN.value
            and role is Role.USER
            and users.count_admins(connection) <= 1
        ):
            raise Conflict("Impossible de retirer le dernier administrateur")
        if user.role == role.value:
            return user
        return _new_token_key(connection, user_id, role=role.value)

    return await changing_principal(metadata, principals, user_id, work)


async def rotate_token_key(*, metadata: Metadata, principals: PrincipalCache, user_id: int) -> None:
    """Give the account a new token key: every token issued before stops working at once
    (what a password change calls)."""
    await changing_principal(metadata, principals, user_id, lambda c: _new_token_key(c, user_id))


async def create_admin(*, metadata: Metadata, email: str, password: str) -> Record:
    """The ``create-admin`` command: a new admin, or an existing account made admin with a
    new password. Outside the service, no cached caller to drop: the service sees the
    change when its cached entry expires, and the tokens issued before end with the key."""
    data = UserRegister(email=email, password=password, role=Role.ADMIN)
    password_hash = await anyio.to_thread.run_sync(security.hash_password, data.password)

    def work(connection: Connection) -> Record:
        # The instance has its first admin now: registration no longer offers the role.
        if not users.step_taken(connection, FIRST_ADMIN):
            users.claim_step(connection, FIRST_ADMIN)
        existing = users.by_email(connection, canonical_email(data.email))
        if existing is None:
            return users.insert_user(
                connection, email=data.email, password_hash=password_hash, role=Role.ADMIN.value
            )
        return _new_token_key(
            connection, existing.id, role=Role.ADMIN.value, password_hash=password_hash
        )

    return await metadata.write(work)


def ensure_not_self(caller: Principal, target: Record) -> None:
    if caller.id == target.id:
        raise Conflict("Un administrateur ne peut pas se supprimer lui-même")
