"""Notification channels: validation beyond the schema (the URL under the outbound rule,
who may use apprise and ``scope: all``), encryption of the URL and the webhook secret,
the test, and the deliveries' listing."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection

from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.events import ServiceEvent
from backup_api.exceptions import BadRequest, Forbidden, NotFound, TooManyRequests
from backup_api.models import (
    DeliveryAttemptPublic,
    NotificationCreate,
    NotificationPublic,
    NotificationScope,
    NotificationTestResult,
    NotificationType,
    NotificationUpdate,
    check_http_url,
    utcnow,
)
from backup_api.netpolicy import HostNotAllowedError
from backup_api.notifications import appriseurls, outbound, webhooks
from backup_api.notifications.sender import Notifier
from backup_api.principals import Principal
from backup_api.ratelimit import RateLimiter
from backup_api.repositories import Record, notifications, users
from backup_api.security import CredentialError, Keys, encrypt_secret
from backup_api.services.connectiontests import THROTTLED
from backup_api.services.ownership import NOTIFICATION

#: The event type of ``POST /api/notifications/{id}/test``.
TEST_EVENT = "test"
SCOPE_ADMIN_ONLY = "Données invalides: scope: « all » est réservé aux canaux d'un administrateur"
UNREADABLE = "impossible de déchiffrer l'URL du canal (clé de chiffrement changée ?)"


def to_public(channel: Record) -> NotificationPublic:
    return NotificationPublic(
        id=channel.id,
        name=channel.name,
        type=channel.type,
        url=channel.url_masked,
        events=json.loads(channel.events),
        scope=channel.scope,
        enabled=channel.enabled,
        user_id=channel.user_id,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


async def checked_url(settings: Settings, channel_type: str, url: str, owner_is_admin: bool) -> str:
    """``url`` checked for a channel of ``channel_type`` owned by an admin or not; its
    masked form. The messages name the host at most, never the URL."""
    if channel_type == NotificationType.WEBHOOK.value:
        try:
            check_http_url(url)
            await outbound.pin(
                url, owner_is_admin=owner_is_admin, allowed=settings.allowed_outbound_hosts
            )
        except (ValueError, HostNotAllowedError) as exc:
            raise BadRequest(f"Données invalides: url: {exc}") from None
        return outbound.mask_url(url)
    try:
        appriseurls.check_url(url)
    except ValueError as exc:
        raise BadRequest(f"Données invalides: url: {exc}") from None
    try:
        appriseurls.check_allowed(
            url, owner_is_admin=owner_is_admin, allowed=settings.allowed_outbound_hosts
        )
    except HostNotAllowedError as exc:
        raise Forbidden(f"Données invalides: url: {exc}") from None
    return appriseurls.mask(url)


def _check_scope(scope: str, owner_is_admin: bool) -> None:
    if scope == NotificationScope.ALL.value and not owner_is_admin:
        raise Forbidden(SCOPE_ADMIN_ONLY)


async def create_channel(
    *,
    settings: Settings,
    metadata: Metadata,
    keys: Keys,
    owner: Principal,
    data: NotificationCreate,
) -> tuple[Record, str | None]:
    """The channel's record, and its webhook secret (the one time it is shown)."""
    _check_scope(data.scope.value, owner.is_admin)
    masked = await checked_url(settings, data.type.value, data.url, owner.is_admin)
    secret = webhooks.new_secret() if data.type is NotificationType.WEBHOOK else None
    created = utcnow()
    values: dict[str, Any] = {
        "user_id": owner.id,
        "name": data.name,
        "type": data.type.value,
        "url_encrypted": encrypt_secret(keys, data.url),
        "url_masked": masked,
        "secret_encrypted": None if secret is None else encrypt_secret(keys, secret),
        "events": json.dumps(data.events),
        "scope": data.scope.value,
        "enabled": data.enabled,
        "created_at": created,
        "updated_at": created,
    }
    channel = await metadata.write(lambda c: notifications.insert_channel(c, values))
    return channel, secret


async def list_channels(
    *, metadata: Metadata, user: Principal, limit: int, offset: int
) -> list[Record]:
    """Oldest first: the caller's, or everyone's for an admin."""
    owner_id = None if user.is_admin else user.id
    return await metadata.read(lambda c: notifications.page(c, owner_id, limit, offset))


async def _owner_is_admin(metadata: Metadata, owner_id: int) -> bool:
    return await metadata.read(lambda c: users.is_admin(c, owner_id))


async def update_channel(
    *,
    settings: Settings,
    metadata: Metadata,
    keys: Keys,
    channel: Record,
    data: NotificationUpdate,
) -> Record:
    changes = data.model_dump(exclude_unset=True, mode="json")
    # The owner's role decides, as when the channel sends (an admin may edit anyone's).
    owner_is_admin = await _owner_is_admin(metadata, channel.user_id)
    if "scope" in changes:
        _check_scope(changes["scope"], owner_is_admin)
    if "url" in changes:
        url = changes.pop("url")
        changes["url_masked"] = await checked_url(settings, channel.type, url, owner_is_admin)
        changes["url_encrypted"] = encrypt_secret(keys, url)
    if "events" in changes:
        changes["events"] = json.dumps(changes["events"])
    changes["updated_at"] = utcnow()
    channel_id: int = channel.id
    updated = await metadata.write(lambda c: notifications.update_channel(c, channel_id, changes))
    if updated is None:
        raise NotFound(NOTIFICATION.missing)
    return updated


async def delete_channel(*, metadata: Metadata, channel: Record) -> None:
    channel_id: int = channel.id
    await metadata.write(lambda c: notifications.delete_channel(c, channel_id))


async def test_channel(
    *,
    notifier: Notifier,
    metadata: Metadata,
    limiter: RateLimiter,
    caller: Principal,
    channel: Record,
) -> NotificationTestResult:
    """Send a ``test`` event to the channel now, as a delivery would (same rules, same
    signature), and say what the receiver answered. Not recorded, not retried."""
    wait = limiter.acquire(caller.id)
    if wait:
        raise TooManyRequests(THROTTLED, retry_after=wait)
    owner_is_admin = await _owner_is_admin(metadata, channel.user_id)
    try:
        target = notifier.channel_of(channel, owner_is_admin)
    except CredentialError:
        return NotificationTestResult(ok=False, error=UNREADABLE)
    event = ServiceEvent(
        TEST_EVENT,
        channel.user_id,
        {
            "channel": {"id": channel.id, "name": channel.name},
            "message": "Notification de test de backup-api",
        },
    )
    content = webhooks.body(event.type, event.at, event.data)
    outcome = await notifier.deliver(target, event.id, event.type, content)
    return NotificationTestResult(
        ok=outcome.ok, status_code=outcome.status_code, error=outcome.error
    )


async def list_attempts(
    *, metadata: Metadata, channel: Record, limit: int, offset: int
) -> list[DeliveryAttemptPublic]:
    channel_id: int = channel.id

    def read(connection: Connection) -> list[Record]:
        return notifications.attempts_page(connection, channel_id, limit, offset)

    rows = await metadata.read(read)
    return [
        DeliveryAttemptPublic(
            id=row.id,
            delivery_id=row.delivery_id,
            event_type=row.event_type,
            webhook_id=row.event_id,
            attempt=row.attempt,
            status_code=row.status_code,
            error=row.error,
            at=row.at,
            delivery_status=row.delivery_status,
            next_attempt_at=row.next_attempt_at,
        )
        for row in rows
    ]
