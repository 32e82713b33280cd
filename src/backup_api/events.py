"""The service's events: what happened that someone outside may want to hear about.

Producers (the job records' announcer, the scheduler, retention, drills, the overdue
watch) ``publish`` a ``ServiceEvent``; subscribers (notification channels, metrics) are
called with it. A subscriber must not block: it records what it needs and returns (the
notification deliveries, for instance, are persisted and sent by their own task), so a
slow receiver never delays a backup or the API. ``publish`` is called from the event loop.

An event's ``data`` is JSON-ready and public: what its owner may read through the API,
never a password, token, key or channel URL.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backup_api.models import utcnow
from backup_api.repositories import Record

logger = logging.getLogger("backup_api.events")

BACKUP_COMPLETED = "backup.completed"
BACKUP_FAILED = "backup.failed"
BACKUP_OVERDUE = "backup.overdue"
RESTORE_COMPLETED = "restore.completed"
RESTORE_FAILED = "restore.failed"
SCHEDULE_SKIPPED = "schedule.skipped"
RETENTION_DELETED = "retention.deleted"
DRILL_PASSED = "drill.passed"
DRILL_FAILED = "drill.failed"

#: Every event type a notification channel may subscribe to.
EVENT_TYPES: tuple[str, ...] = (
    BACKUP_COMPLETED,
    BACKUP_FAILED,
    BACKUP_OVERDUE,
    RESTORE_COMPLETED,
    RESTORE_FAILED,
    SCHEDULE_SKIPPED,
    RETENTION_DELETED,
    DRILL_PASSED,
    DRILL_FAILED,
)


def new_event_id() -> str:
    """A unique message id (Standard Webhooks' ``webhook-id``): the same on every attempt
    to deliver one event."""
    return "msg_" + secrets.token_urlsafe(18)


@dataclass(frozen=True)
class ServiceEvent:
    #: One of ``EVENT_TYPES``.
    type: str
    #: The account the event is about (the owner of the backup, restore or schedule);
    #: None for a service-wide event. Channels of that account, and admins' channels,
    #: hear it.
    user_id: int | None
    #: The payload's ``data``: public fields only (see the module's docstring).
    data: Mapping[str, Any]
    id: str = field(default_factory=new_event_id)
    at: datetime = field(default_factory=utcnow)


def database_summary(database: Record | None) -> dict[str, Any] | None:
    """The public part of a database an event names: never its host, user or password."""
    if database is None:
        return None
    return {"id": database.id, "name": database.name, "type": database.type}


Subscriber = Callable[[ServiceEvent], None]


class EventBus:
    """Hands each published event to every subscriber, in subscription order."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def publish(self, event: ServiceEvent) -> None:
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception:
                # One subscriber's failure is its own: the others still hear the event.
                logger.exception("an event subscriber failed on %s", event.type)
