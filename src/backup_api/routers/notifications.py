"""Notification channels: webhooks (Standard Webhooks) and apprise URLs that hear the
service's events, their test and their deliveries."""

from __future__ import annotations

from fastapi import APIRouter, status

from backup_api import audit
from backup_api.deps import CurrentUser, NotificationDep, PageDep, StateDep
from backup_api.models import (
    DeliveryList,
    MessageResponse,
    NotificationCreate,
    NotificationCreated,
    NotificationEnvelope,
    NotificationItem,
    NotificationList,
    NotificationTestResult,
    NotificationUpdate,
)
from backup_api.routers.responses import (
    APPRISE_ADMIN_ONLY,
    INVALID_CHANNEL_URL,
    NOTIFICATION_NOT_FOUND,
    OWNER_ONLY,
    SCOPE_ADMIN_ONLY,
    STORAGE_TESTS_THROTTLED,
    errors,
)
from backup_api.services import notifications as notifications_service

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

ONE_CHANNEL = (OWNER_ONLY, NOTIFICATION_NOT_FOUND)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=NotificationCreated,
    summary="Add a notification channel",
    responses=errors(INVALID_CHANNEL_URL, APPRISE_ADMIN_ONLY, SCOPE_ADMIN_ONLY),
)
async def create_notification(
    data: NotificationCreate, user: CurrentUser, state: StateDep
) -> NotificationCreated:
    """Send the chosen events to a webhook (signed as Standard Webhooks says; its secret
    is in this answer only) or to an apprise URL (admins, or hosts the operator lists).
    The URL is encrypted at rest and shown masked."""
    channel, secret = await notifications_service.create_channel(
        settings=state.settings, metadata=state.metadata, keys=state.keys, owner=user, data=data
    )
    audit.record(
        audit.NOTIFICATION_CREATE,
        audit.SUCCESS,
        target_type=audit.NOTIFICATION,
        target_id=channel.id,
        channel_type=channel.type,
    )
    return NotificationCreated(
        message="Canal de notification ajouté avec succès",
        notification=notifications_service.to_public(channel),
        secret=secret,
    )


@router.get(
    "", response_model=NotificationList, summary="List notification channels", responses=errors()
)
async def list_notifications(user: CurrentUser, state: StateDep, page: PageDep) -> NotificationList:
    """List your notification channels (an admin sees all)."""
    channels = await notifications_service.list_channels(
        metadata=state.metadata, user=user, limit=page.limit, offset=page.offset
    )
    return NotificationList(notifications=[notifications_service.to_public(c) for c in channels])


@router.get(
    "/{notification_id}",
    response_model=NotificationItem,
    summary="Get a notification channel",
    responses=errors(*ONE_CHANNEL),
)
async def get_notification(channel: NotificationDep) -> NotificationItem:
    """One channel (its URL masked, never its secret)."""
    return NotificationItem(notification=notifications_service.to_public(channel))


@router.put(
    "/{notification_id}",
    response_model=NotificationEnvelope,
    summary="Update a notification channel",
    responses=errors(INVALID_CHANNEL_URL, APPRISE_ADMIN_ONLY, SCOPE_ADMIN_ONLY, *ONE_CHANNEL),
)
async def update_notification(
    data: NotificationUpdate, channel: NotificationDep, state: StateDep
) -> NotificationEnvelope:
    """Change `name`, `url`, `events`, `scope` or `enabled`; omitted fields are kept (the
    type and the webhook secret never change)."""
    updated = await notifications_service.update_channel(
        settings=state.settings,
        metadata=state.metadata,
        keys=state.keys,
        channel=channel,
        data=data,
    )
    audit.record(
        audit.NOTIFICATION_UPDATE,
        audit.SUCCESS,
        target_type=audit.NOTIFICATION,
        target_id=channel.id,
        fields=sorted(data.model_fields_set),
    )
    return NotificationEnvelope(
        message="Canal de notification mis à jour avec succès",
        notification=notifications_service.to_public(updated),
    )


@router.delete(
    "/{notification_id}",
    response_model=MessageResponse,
    summary="Delete a notification channel",
    responses=errors(*ONE_CHANNEL),
)
async def delete_notification(channel: NotificationDep, state: StateDep) -> MessageResponse:
    """Delete a channel, its pending deliveries and their history."""
    await notifications_service.delete_channel(metadata=state.metadata, channel=channel)
    audit.record(
        audit.NOTIFICATION_DELETE,
        audit.SUCCESS,
        target_type=audit.NOTIFICATION,
        target_id=channel.id,
    )
    return MessageResponse(message="Canal de notification supprimé avec succès")


@router.post(
    "/{notification_id}/test",
    response_model=NotificationTestResult,
    response_model_exclude_none=True,
    summary="Test a notification channel",
    responses=errors(*ONE_CHANNEL, STORAGE_TESTS_THROTTLED),
)
async def test_notification(
    channel: NotificationDep, user: CurrentUser, state: StateDep
) -> NotificationTestResult:
    """Send a `test` event now, as a delivery would, and answer `ok: true` with the
    receiver's `status_code`, or `ok: false` with why (not recorded, not retried)."""
    return await notifications_service.test_channel(
        notifier=state.notifier,
        metadata=state.metadata,
        limiter=state.connection_tests,
        caller=user,
        channel=channel,
    )


@router.get(
    "/{notification_id}/deliveries",
    response_model=DeliveryList,
    summary="List a channel's delivery attempts",
    responses=errors(*ONE_CHANNEL),
)
async def list_deliveries(channel: NotificationDep, state: StateDep, page: PageDep) -> DeliveryList:
    """Each attempt to deliver an event, newest first: the event type, its `webhook_id`
    (the same on every attempt), the attempt's number, the receiver's status code or the
    error, and where the delivery stands."""
    attempts = await notifications_service.list_attempts(
        metadata=state.metadata, channel=channel, limit=page.limit, offset=page.offset
    )
    return DeliveryList(deliveries=attempts)
