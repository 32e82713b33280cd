"""The notifications' engine: the event bus's subscriber, the deliveries' sender loop,
and the schedules' heartbeats.

Hearing an event costs the publisher nothing: ``hear`` only starts a task that records
one delivery per channel that listens (a metadata write) and wakes the sender. The sender
loop reads the due deliveries from the metadata database, claims each one (a conditional
update that also leases it, so another process, or this one after a crash, tries it
again later), sends at most ``notification_concurrency`` at once, each under
``notification_timeout_seconds``, and records the attempt with the next one planned on
Svix's schedule (at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then failed).
Everything lives in the database: a restart resumes where the deliveries stand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection

from backup_api import events
from backup_api.clock import Clock
from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.models import (
    BackupTrigger,
    DeliveryStatus,
    NotificationScope,
    NotificationType,
    Role,
)
from backup_api.notifications import appriseurls, outbound, webhooks
from backup_api.notifications.outbound import Outcome
from backup_api.repositories import Record, databases, notifications, schedules, users
from backup_api.security import CredentialError, Keys, decrypt_secret

logger = logging.getLogger("backup_api.notifications")

#: The wait before each retry of a failed attempt (Svix's schedule); the first attempt
#: is at once, and one failed after the last wait makes the delivery ``failed``.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: Deliveries read per pass beyond what can be sent at once.
_BATCH_FACTOR = 4
_HEARTBEAT_TRIGGERS = {BackupTrigger.SCHEDULE.value, BackupTrigger.RETRY.value}
_UNREADABLE_URL = "impossible de déchiffrer l'URL du canal (clé de chiffrement changée ?)"


def as_utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def next_attempt(attempts_made: int, at: datetime) -> datetime | None:
    """When to try again after ``attempts_made`` failed attempts (None: give up)."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    return at + RETRY_DELAYS[attempts_made - 1]


def hears(channel: Record, event: events.ServiceEvent) -> bool:
    """Whether ``channel`` (a listener's row) hears ``event``: its type is one the
    channel chose, and the event is its owner's, or the channel is an admin's for all."""
    if event.type not in json.loads(channel.events):
        return False
    if channel.scope == NotificationScope.ALL.value and channel.owner_role == Role.ADMIN.value:
        return True
    return event.user_id is not None and channel.user_id == event.user_id


@dataclass(frozen=True)
class Channel:
    """What sending needs of a channel, decrypted."""

    type: str
    url: str
    secret: str | None
    owner_is_admin: bool


class Notifier:
    def __init__(self, *, metadata: Metadata, settings: Settings, keys: Keys, clock: Clock) -> None:
        self.clock = clock
        self._metadata = metadata
        self._settings = settings
        self._keys = keys
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        # Deliveries being sent by this process (never claimed twice by it).
        self._in_flight: set[int] = set()
        self._recording: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="notifications")

    async def stop(self) -> None:
        # Recording is one short write: let it finish, so no heard event is lost.
        if self._recording:
            await asyncio.wait(set(self._recording), timeout=10)
        tasks = [t for t in (self._loop_task, *self._sending) if t is not None]
        cut_short = sorted(self._in_flight)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None
        if cut_short:
            # Sent again at the next start (the receiver may see it twice: at least once).
            now = self.clock.now()
            try:
                await self._metadata.write(lambda c: notifications.release(c, cut_short, now))
            except Exception:
                logger.exception("notifications: could not release the deliveries cut short")

    def wake(self) -> None:
        self._wake.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], into: set[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(coroutine)
        into.add(task)
        task.add_done_callback(into.discard)

    # ------------------------------------------------------------------ the bus
    def hear(self, event: events.ServiceEvent) -> None:
        """The event bus's subscriber: returns at once, the work goes to tasks."""
        self._spawn(self._guarded(self._record(event), "record"), self._recording)
        if event.type in (events.BACKUP_COMPLETED, events.BACKUP_FAILED):
            backup = event.data.get("backup") or {}
            database_id = backup.get("database_id")
            if backup.get("trigger") in _HEARTBEAT_TRIGGERS and database_id is not None:
                ok = event.type == events.BACKUP_COMPLETED
                self._spawn(
                    self._guarded(self._heartbeat(database_id, ok), "heartbeat"), self._sending
                )

    async def _guarded(self, work: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("notifications: %s failed", what)

    async def _record(self, event: events.ServiceEvent) -> None:
        channels = await self._metadata.read(notifications.listeners)
        listening = [channel for channel in channels if hears(channel, event)]
        if not listening:
            return
        content = webhooks.body(event.type, event.at, event.data)
        now = self.clock.now()
        rows = [
            {
                "channel_id": channel.id,
                "event_id": event.id,
                "event_type": event.type,
                "body": content,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for channel in listening
        ]
        await self._metadata.write(lambda c: notifications.insert_deliveries(c, rows))
        self.wake()

    # ------------------------------------------------------------------ sending
    async def _loop(self) -> None:
        poll = timedelta(seconds=self._settings.scheduler_poll_seconds)
        while True:
            self._wake.clear()
            started = self.clock.now()
            try:
                wake_at = await self.run_due(started)
            except Exception:
                logger.exception("notifications: sender pass failed")
                wake_at = None
            # Other processes may record deliveries too: look again now and then.
            deadline = self.clock.now() + poll
            if wake_at is not None and wake_at > started:
                deadline = min(deadline, wake_at)
            await self.clock.sleep_until(deadline, self._wake)

    async def run_due(self, now: datetime) -> datetime | None:
        """Start the attempts due at ``now`` (as many as may run at once); when the next
        pending delivery is due. A send that ends wakes the loop again."""
        room = self._settings.notification_concurrency - len(self._in_flight)
        if room > 0:
            limit = self._settings.notification_concurrency * _BATCH_FACTOR
            rows = await self._metadata.read(lambda c: notifications.due(c, now, limit))
            lease_until = now + timedelta(
                seconds=2 * self._settings.notification_timeout_seconds + 60
            )
            for row in rows:
                if room <= 0:
                    break
                if row.id in self._in_flight:
                    continue
                delivery_id: int = row.id
                claimed = await self._metadata.write(
                    partial(
                        notifications.claim,
                        delivery_id=delivery_id,
                        mark=row.next_attempt_at,
                        lease_until=lease_until,
                    )
                )
                if not claimed:
                    continue
                room -= 1
                self._in_flight.add(delivery_id)
                self._spawn(self._attempt(row), self._sending)
        nearest = await self._metadata.read(notifications.next_due)
        return None if nearest is None else as_utc(nearest)

    async def _attempt(self, row: Record) -> None:
        try:
            try:
                channel = self._channel(
                    row.channel_type, row.url_encrypted, row.secret_encrypted, row.owner_role
                )
                outcome = await self.deliver(channel, row.event_id, row.event_type, row.body)
            except CredentialError:
                outcome = Outcome(error=_UNREADABLE_URL)
            await self._record_attempt(row, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("notifications: delivery %s: attempt failed", row.id)
        finally:
            self._in_flight.discard(row.id)
            self.wake()

    async def _record_attempt(self, row: Record, outcome: Outcome) -> None:
        at = self.clock.now()
        made = row.attempts + 1
        if outcome.ok:
            status, planned = DeliveryStatus.DELIVERED, None
        else:
            planned = next_attempt(made, at)
            status = DeliveryStatus.PENDING if planned is not None else DeliveryStatus.FAILED
            logger.warning(
                "notifications: delivery %s (%s) attempt %d failed: %s",
                row.id,
                row.event_type,
                made,
                outcome.error,
            )
        delivery = {
            "id": row.id,
            "status": status.value,
            "attempts": made,
            "next_attempt_at": planned,
            "updated_at": at,
        }
        attempt = {
            "delivery_id": row.id,
            "channel_id": row.channel_id,
            "attempt": made,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "at": at,
        }

        def work(connection: Connection) -> None:
            # The channel (and its deliveries) may have been deleted meanwhile.
            if notifications.get(connection, row.channel_id) is not None:
                notifications.record_attempt(connection, delivery, attempt)

        await self._metadata.write(work)

    def _channel(
        self, channel_type: str, url_encrypted: str, secret_encrypted: str | None, owner_role: str
    ) -> Channel:
        return Channel(
            type=channel_type,
            url=decrypt_secret(self._keys, url_encrypted),
            secret=None
            if secret_encrypted is None
            else decrypt_secret(self._keys, secret_encrypted),
            owner_is_admin=owner_role == Role.ADMIN.value,
        )

    def channel_of(self, record: Record, owner_is_admin: bool) -> Channel:
        """A channel's record, decrypted for sending (``CredentialError`` if it cannot)."""
        role = Role.ADMIN.value if owner_is_admin else Role.USER.value
        return self._channel(record.type, record.url_encrypted, record.secret_encrypted, role)

    async def deliver(
        self, channel: Channel, event_id: str, event_type: str, content: str
    ) -> Outcome:
        """One attempt: a signed POST for a webhook, a message for apprise."""
        settings = self._settings
        if channel.type == NotificationType.APPRISE.value:
            return await appriseurls.send(
                channel.url,
                event_type,
                content,
                owner_is_admin=channel.owner_is_admin,
                allowed=settings.allowed_outbound_hosts,
                deadline=settings.notification_timeout_seconds,
            )
        assert channel.secret is not None
        timestamp = int(self.clock.now().timestamp())
        return await outbound.request(
            "POST",
            channel.url,
            owner_is_admin=channel.owner_is_admin,
            allowed=settings.allowed_outbound_hosts,
            deadline=settings.notification_timeout_seconds,
            headers=webhooks.headers(channel.secret, event_id, timestamp, content),
            content=content.encode("utf-8"),
        )

    # ------------------------------------------------------------------ heartbeats
    async def _heartbeat(self, database_id: int, ok: bool) -> None:
        def read(connection: Connection) -> tuple[str, bool] | None:
            schedule = schedules.of_database(connection, database_id)
            if schedule is None or schedule.heartbeat_url_encrypted is None:
                return None
            database = databases.get(connection, database_id)
            if database is None:
                return None
            return schedule.heartbeat_url_encrypted, users.is_admin(connection, database.user_id)

        found = await self._metadata.read(read)
        if found is None:
            return
        encrypted, owner_is_admin = found
        try:
            url = decrypt_secret(self._keys, encrypted)
        except CredentialError:
            logger.warning("heartbeat of database %s: %s", database_id, _UNREADABLE_URL)
            return
        if not ok:
            url = heartbeat_fail_url(url)
        outcome = await outbound.request(
            "GET",
            url,
            owner_is_admin=owner_is_admin,
            allowed=self._settings.allowed_outbound_hosts,
            deadline=self._settings.notification_timeout_seconds,
        )
        if not outcome.ok:
            logger.warning("heartbeat of database %s failed: %s", database_id, outcome.error)


def heartbeat_fail_url(url: str) -> str:
    """healthchecks.io's convention: ``<url>/fail`` (before any query string)."""
    base, question, query = url.partition("?")
    return f"{base.rstrip('/')}/fail{question}{query}"
