"""The overdue watch: a scheduled database without a completed backup for too long.

A database with an enabled schedule is overdue once ``OVERDUE_FACTOR`` (1.5) times its
schedule's interval has passed since its last completed backup (or since the schedule was
created, when that is later: a schedule gets its first chance before it is judged). The
interval is the time between the schedule's next two slots after now, so ``0 3 * * *``
gives 36 hours, ``0 * * * *`` an hour and a half; a daylight-saving day counts as it is.

Each check compares what it finds with the previous one and publishes ``backup.overdue``
only for databases that became overdue since: once per episode, not at every check; a
database that recovered (a completed backup) and falls behind again starts a new episode.
Episodes are remembered in memory: a restart announces the ones still running once more,
better a repeat than a silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from backup_api.clock import Clock
from backup_api.config import Settings
from backup_api.cron import CronError, CronSchedule
from backup_api.db import Metadata
from backup_api.events import BACKUP_OVERDUE, EventBus, ServiceEvent
from backup_api.models import as_utc, format_timestamp
from backup_api.repositories import Record
from backup_api.repositories import metrics as metrics_records

logger = logging.getLogger("backup_api.overdue")

OVERDUE_FACTOR = 1.5


def schedule_interval(cron: str, zone: str, now: datetime) -> timedelta:
    """The time between the schedule's next two slots after ``now``."""
    schedule = CronSchedule(cron, zone)
    first = schedule.next_after(now)
    return schedule.next_after(first) - first


def overdue_since(row: Record, now: datetime) -> datetime | None:
    """When the scheduled database ``row`` (``repositories.metrics.scheduled``) became
    overdue, or None when it is not (or its schedule can no longer be read)."""
    try:
        interval = schedule_interval(row.cron, row.timezone, now)
    except CronError:
        return None  # the scheduler logs it: the schedule has stopped
    limit = deadline(
        interval=interval,
        schedule_created_at=row.schedule_created_at,
        last_success_at=row.last_success_at,
    )
    return limit if now >= limit else None


def deadline(
    *, interval: timedelta, schedule_created_at: datetime, last_success_at: datetime | None
) -> datetime:
    """The instant an enabled schedule's database becomes overdue: the rule itself, which
    the watch and the dashboard's red line both apply."""
    reference = as_utc(schedule_created_at)
    if last_success_at is not None:
        reference = max(reference, as_utc(last_success_at))
    return reference + interval * OVERDUE_FACTOR


def event_data(row: Record, since: datetime) -> dict[str, Any]:
    """The event's public data: the database, its schedule, the two instants."""
    return {
        "database": {"id": row.database_id, "name": row.database_name, "type": row.database_type},
        "schedule": {"id": row.schedule_id, "cron": row.cron, "timezone": row.timezone},
        "last_success_at": (
            None if row.last_success_at is None else format_timestamp(as_utc(row.last_success_at))
        ),
        "overdue_since": format_timestamp(since),
    }


class OverdueWatch:
    def __init__(
        self, *, clock: Clock, settings: Settings, metadata: Metadata, events: EventBus
    ) -> None:
        self.clock = clock
        self._settings = settings
        self._metadata = metadata
        self._events = events
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: The databases overdue at the last check, and since when: the running episodes.
        self.overdue: dict[int, datetime] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="overdue-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        interval = timedelta(seconds=self._settings.overdue_check_seconds)
        while True:
            self._wake.clear()
            try:
                await self.check()
            except Exception:
                logger.exception("overdue check failed")
            # A test's clock sets the wake event when it moves: the check sees the new time.
            await self.clock.sleep_until(self.clock.now() + interval, self._wake)

    async def check(self) -> list[ServiceEvent]:
        """Look at every enabled schedule now; publish (and return) the episodes that
        began since the last check."""
        now = self.clock.now()
        rows = await self._metadata.read(metrics_records.scheduled)
        current: dict[int, datetime] = {}
        published = []
        for row in rows:
            since = overdue_since(row, now)
            if since is None:
                continue
            current[row.database_id] = since
            if row.database_id in self.overdue:
                continue
            logger.warning(
                "database %s: no completed backup within %.1f intervals of its schedule, "
                "overdue since %s",
                row.database_id,
                OVERDUE_FACTOR,
                format_timestamp(since),
            )
            event = ServiceEvent(BACKUP_OVERDUE, row.user_id, event_data(row, since))
            self._events.publish(event)
            published.append(event)
        self.overdue = current
        return published
