"""Accounts, and the one-time steps of the instance's life (``bootstrap``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from backup_api.models import Bootstrap, Role, User, new_token_key, utcnow
from backup_api.repositories import Record

_USERS: Table = User.__table__  # type: ignore[attr-defined]
_BOOTSTRAP: Table = Bootstrap.__table__  # type: ignore[attr-defined]

_BY_ID = select(_USERS).where(_USERS.c.id == bindparam("user_id"))
_BY_EMAIL = select(_USERS).where(_USERS.c.email == bindparam("email"))
# What authenticating a request needs, and nothing more (it runs on a cache miss).
_PRINCIPAL = select(_USERS.c.id, _USERS.c.role, _USERS.c.token_key).where(
    _USERS.c.id == bindparam("user_id")
)
_COUNT = select(func.count()).select_from(_USERS)
_COUNT_ADMINS = _COUNT.where(_USERS.c.role == Role.ADMIN.value)
_PAGE = select(_USERS).order_by(_USERS.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
_INSERT = insert(_USERS).returning(*_USERS.c)
_DELETE = delete(_USERS).where(_USERS.c.id == bindparam("user_id"))
_CLAIM = insert(_BOOTSTRAP)
_STEP = select(_BOOTSTRAP.c.step).where(_BOOTSTRAP.c.step == bindparam("step"))


def get(connection: Connection, user_id: int) -> Record | None:
    return connection.execute(_BY_ID, {"user_id": user_id}).first()


def principal(connection: Connection, user_id: int) -> Record | None:
    """The account's ``id``, ``role`` and ``token_key``."""
    return connection.execute(_PRINCIPAL, {"user_id": user_id}).first()


def by_email(connection: Connection, email: str) -> Record | None:
    """The account of ``email``, given in its canonical spelling."""
    return connection.execute(_BY_EMAIL, {"email": email}).first()


def count(connection: Connection) -> int:
    return int(connection.execute(_COUNT).scalar_one())


def count_admins(connection: Connection) -> int:
    return int(connection.execute(_COUNT_ADMINS).scalar_one())


def is_admin(connection: Connection, user_id: int) -> bool:
    row = principal(connection, user_id)
    return row is not None and row.role == Role.ADMIN.value


def page(connection: Connection, limit: int, offset: int) -> list[Record]:
    return list(connection.execute(_PAGE, {"limit": limit, "offset": offset}))


def insert_user(connection: Connection, *, email: str, password_hash: str, role: str) -> Record:
    """The new account; ``IntegrityError`` if the e-mail is taken."""
    created = utcnow()
    values = {
        "email": email,
        "password_hash": password_hash,
        "role": role,
        "token_key": new_token_key(),
        "created_at": created,
        "updated_at": created,
    }
    return connection.execute(_INSERT, values).one()


def update_user(connection: Connection, user_id: int, **values: Any) -> Record | None:
    """The account once changed, or ``None`` if it no longer exists."""
    statement = update(_USERS).where(_USERS.c.id == user_id).values(**values)
    return connection.execute(statement.returning(*_USERS.c)).first()


def delete_user(connection: Connection, user_id: int) -> None:
    connection.execute(_DELETE, {"user_id": user_id})


def step_taken(connection: Connection, step: str) -> bool:
    return connection.execute(_STEP, {"step": step}).first() is not None


def claim_step(connection: Connection, step: str) -> bool:
    """Take a one-time step for this transaction, or learn that someone already has.

    The row's primary key decides between concurrent claimants, whatever process they run
    in: the later insert waits for the earlier transaction and fails if it committed. After
    a refusal the transaction cannot go on (PostgreSQL aborts it): the caller raises.
    """
    try:
        connection.execute(_CLAIM, {"step": step, "created_at": utcnow()})
    except IntegrityError:
        return False
    return True
