"""Notification channels (oldest first in a page), their deliveries (one event for one
channel, with where its retries stand) and each delivery's attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from backup_api.models import (
    DeliveryStatus,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    User,
)
from backup_api.repositories import Record
from backup_api.repositories.owned import OwnedTable

_CHANNELS_OWNED = OwnedTable(NotificationChannel.__table__, newest_first=False)  # type: ignore[attr-defined]
_CHANNELS: Table = NotificationChannel.__table__  # type: ignore[attr-defined]
_DELIVERIES: Table = NotificationDelivery.__table__  # type: ignore[attr-defined]
_ATTEMPTS: Table = NotificationAttempt.__table__  # type: ignore[attr-defined]
_USERS: Table = User.__table__  # type: ignore[attr-defined]

get = _CHANNELS_OWNED.get
page = _CHANNELS_OWNED.page
insert_channel = _CHANNELS_OWNED.insert
update_channel = _CHANNELS_OWNED.update
#: Its deliveries and attempts go with it (ON DELETE CASCADE).
delete_channel = _CHANNELS_OWNED.delete

_PENDING = DeliveryStatus.PENDING.value

#: The enabled channels and their owner's role: who hears an event is decided from these.
_LISTENERS = (
    select(_CHANNELS, _USERS.c.role.label("owner_role"))
    .join(_USERS, _USERS.c.id == _CHANNELS.c.user_id)
    .where(_CHANNELS.c.enabled.is_(True))
)
_DUE = (
    select(
        _DELIVERIES,
        _CHANNELS.c.type.label("channel_type"),
        _CHANNELS.c.url_encrypted,
        _CHANNELS.c.secret_encrypted,
        _USERS.c.role.label("owner_role"),
    )
    .join(_CHANNELS, _CHANNELS.c.id == _DELIVERIES.c.channel_id)
    .join(_USERS, _USERS.c.id == _CHANNELS.c.user_id)
    .where(
        _DELIVERIES.c.status == _PENDING,
        _DELIVERIES.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
    .limit(bindparam("limit"))
)
_CLAIM = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id == bindparam("delivery_id"),
        _DELIVERIES.c.status == _PENDING,
        _DELIVERIES.c.next_attempt_at == bindparam("mark"),
    )
    .values(next_attempt_at=bindparam("lease_until"))
)
_NEXT_DUE = select(func.min(_DELIVERIES.c.next_attempt_at)).where(_DELIVERIES.c.status == _PENDING)
_ATTEMPTS_PAGE = (
    select(
        _ATTEMPTS,
        _DELIVERIES.c.event_type,
        _DELIVERIES.c.event_id,
        _DELIVERIES.c.status.label("delivery_status"),
        _DELIVERIES.c.next_attempt_at,
    )
    .join(_DELIVERIES, _DELIVERIES.c.id == _ATTEMPTS.c.delivery_id)
    .where(_ATTEMPTS.c.channel_id == bindparam("channel_id"))
    .order_by(_ATTEMPTS.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def listeners(connection: Connection) -> list[Record]:
    """Every enabled channel, with its owner's role (``owner_role``)."""
    return list(connection.execute(_LISTENERS))


def insert_deliveries(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(insert(_DELIVERIES), rows)


def due(connection: Connection, now: datetime, limit: int) -> list[Record]:
    """Pending deliveries whose attempt is due at ``now``, oldest first, each with its
    channel's type, encrypted URL and secret, and its owner's role."""
    return list(connection.execute(_DUE, {"now": now, "limit": limit}))


def claim(connection: Connection, delivery_id: int, mark: Any, lease_until: datetime) -> bool:
    """Take the attempt planned at ``mark`` (as read) by moving it to ``lease_until``
    (when it is tried again should this process die while sending); False if another
    process took it first."""
    parameters = {"delivery_id": delivery_id, "mark": mark, "lease_until": lease_until}
    return connection.execute(_CLAIM, parameters).rowcount == 1


def release(connection: Connection, delivery_ids: list[int], at: datetime) -> None:
    """Give back deliveries whose attempt was cut short (the service stopping): due at
    ``at`` rather than at the end of their lease."""
    if delivery_ids:
        connection.execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id.in_(delivery_ids), _DELIVERIES.c.status == _PENDING)
            .values(next_attempt_at=at)
        )


def record_attempt(
    connection: Connection,
    delivery: dict[str, Any],
    attempt: dict[str, Any],
) -> None:
    """One attempt's row, and the delivery's new status, attempt count and next attempt."""
    connection.execute(insert(_ATTEMPTS), attempt)
    delivery_id = delivery.pop("id")
    connection.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == delivery_id).values(delivery))


def next_due(connection: Connection) -> datetime | None:
    """When the earliest pending delivery is due (None: nothing pending)."""
    value: datetime | None = connection.execute(_NEXT_DUE).scalar_one()
    return value


def attempts_page(connection: Connection, channel_id: int, limit: int, offset: int) -> list[Record]:
    """A channel's attempts, newest first, each with its delivery's event type, event
    id, status and next attempt."""
    parameters = {"channel_id": channel_id, "limit": limit, "offset": offset}
    return list(connection.execute(_ATTEMPTS_PAGE, parameters))
