"""The retention sweep: deletes what ``policy.plan`` says to delete.

It runs after each completed backup of a database (for that database) and every
``BACKUP_API_RETENTION_SWEEP_SECONDS`` (for all of them), one sweep at a time. Each
deletion goes through the same service path as ``DELETE /api/backups/{id}``
(``services.backups.delete_backup``); one that cannot happen now (a restore reads the
backup, a client downloads it, the file cannot be removed) is logged and left for the next
sweep, and the sweep goes on. A file already gone counts as deleted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection

from backup_api.clock import Clock, SystemClock
from backup_api.config import Settings
from backup_api.copies.store import CopyStore
from backup_api.db import Metadata
from backup_api.events import RETENTION_DELETED, EventBus, ServiceEvent
from backup_api.exceptions import Conflict
from backup_api.jobs.queue import JobKind, JobQueue
from backup_api.jobs.records import JobCompleted, JobEvent
from backup_api.models import CopyStatus, as_utc
from backup_api.repositories import Record as Row
from backup_api.repositories import backups, copies
from backup_api.repositories import retention as retention_records
from backup_api.retention.policy import Doomed, Plan, Policy, Record, plan
from backup_api.retention.zone import retention_zone
from backup_api.services.announcements import backup_data
from backup_api.services.backups import ActiveDownloads, delete_backup

logger = logging.getLogger("backup_api.retention")


def policy_of(row: Row) -> Policy:
    return Policy(
        keep_last=row.keep_last,
        keep_hourly=row.keep_hourly,
        keep_daily=row.keep_daily,
        keep_weekly=row.keep_weekly,
        keep_monthly=row.keep_monthly,
        keep_yearly=row.keep_yearly,
        max_age_days=row.max_age_days,
    )


def _history(connection: Connection, database_id: int | None) -> list[Record]:
    return [
        Record(
            id=backup.id,
            status=backup.status,
            created_at=backup.created_at,
            pinned=bool(backup.pinned),
            started=backup.started_at is not None,
        )
        for backup in retention_records.history(connection, database_id)
    ]


@dataclass
class SweepOutcome:
    deleted: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


class _Saved:
    """Marker: the database's saved policy."""


SAVED = _Saved()


class RetentionSweeper:
    def __init__(
        self,
        *,
        settings: Settings,
        metadata: Metadata,
        copy_store: CopyStore,
        queue: JobQueue,
        clock: Clock | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.settings = settings
        self._events = events
        self.clock: Clock = clock or SystemClock()
        self._metadata = metadata
        self._copy_store = copy_store
        self._queue = queue
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        # Set by a clock that moved (a test's), so the loop looks at the new time.
        self._wake = asyncio.Event()
        self._closed = False
        #: Sweeps made after a completed backup, so far (tests wait for theirs).
        self.requested_sweeps = 0
        #: Streamed to a client now: left for the next sweep.
        self.downloads = ActiveDownloads()

    # ------------------------------------------------------------------ decision
    async def plan(self, database_id: int | None, policy: Policy | _Saved | None = SAVED) -> Plan:
        """What a sweep of ``database_id`` would do now, under ``policy`` (the saved one
        by default; ``None``: no policy)."""
        failed_age = timedelta(days=self.settings.retention_failed_days)

        def work(connection: Connection) -> Plan:
            chosen = policy
            if isinstance(chosen, _Saved):
                row = (
                    None
                    if database_id is None
                    else retention_records.get_policy(connection, database_id)
                )
                chosen = None if row is None else policy_of(row)
            zone = retention_zone(connection, database_id)
            return plan(
                _history(connection, database_id), chosen, self.clock.now(), zone, failed_age
            )

        return await self._metadata.read(work)

    # ------------------------------------------------------------------ sweeping
    async def sweep(self, database_id: int | None) -> SweepOutcome:
        """Apply the saved policy of ``database_id`` (``None``: records of deleted databases,
        which only lose their expired failed records)."""
        async with self._lock:
            doomed = (await self.plan(database_id)).delete
            outcome = SweepOutcome()
            for item in doomed:
                if await self._delete(database_id, item):
                    outcome.deleted.append(item.backup_id)
                else:
                    outcome.skipped.append(item.backup_id)
            return outcome

    async def _delete(self, database_id: int | None, item: Doomed) -> bool:
        if item.backup_id in self.downloads:
            logger.info(
                "retention: backup %s is being downloaded, left for the next sweep",
                item.backup_id,
            )
            return False
        backup_id = item.backup_id
        try:
            backup = await self._metadata.read(lambda c: backups.get(c, backup_id))
            if backup is None:
                return True
            if backup.pinned or backup.database_id != database_id:
                return False  # pinned or moved since the plan: its next sweep decides
            held = await self._metadata.read(lambda c: copies.of_backup(c, backup_id))
            now = self.clock.now()
            if any(copy.status == CopyStatus.DELETE_FAILED.value for copy in held):
                # Its deletion failed once: the owner sees why, and a retry finishes it.
                return False
            if any(c.retain_until is not None and as_utc(c.retain_until) > now for c in held):
                logger.info(
                    "retention: backup %s is under Object Lock, left for a later sweep",
                    backup_id,
                )
                return False
            announced = None
            if self._events is not None:
                announced = await self._metadata.read(lambda c: backup_data(c, backup))
            await delete_backup(
                metadata=self._metadata,
                copy_store=self._copy_store,
                queue=self._queue,
                backup=backup,
            )
            if self._events is not None and announced is not None:
                announced["reason"] = item.reason
                self._events.publish(ServiceEvent(RETENTION_DELETED, backup.user_id, announced))
        except Conflict:
            logger.info(
                "retention: backup %s is being restored, left for the next sweep", item.backup_id
            )
            return False
        except Exception:
            logger.exception("retention: could not delete backup %s", item.backup_id)
            return False
        logger.info(
            "retention: backup %s of database %s deleted (%s)",
            item.backup_id,
            database_id,
            item.reason,
        )
        return True

    async def sweep_all(self) -> None:
        database_ids = await self._metadata.read(retention_records.database_ids)
        for database_id in database_ids:
            try:
                await self.sweep(database_id)
            except Exception:
                logger.exception("retention: sweep of database %s failed", database_id)

    # ------------------------------------------------------------------ triggers
    async def job_event(self, event: JobEvent) -> None:
        """A listener of the job records: a completed backup has its database swept."""
        if (
            isinstance(event, JobCompleted)
            and event.kind is JobKind.BACKUP
            and event.database_id is not None
        ):
            self.request(event.database_id)

    def request(self, database_id: int) -> None:
        """Sweep ``database_id`` soon (after one of its backups completed), in the
        background: the job that asked does not wait for it."""
        if self._closed:
            return  # stopping: the next start's periodic sweep covers it
        task = asyncio.create_task(self._requested(database_id), name=f"retention-{database_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _requested(self, database_id: int) -> None:
        try:
            await self.sweep(database_id)
        except Exception:
            logger.exception("retention: sweep of database %s failed", database_id)
        finally:
            self.requested_sweeps += 1

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._periodic(), name="retention-loop")

    async def _periodic(self) -> None:
        # Asleep until the sweep is due, but looking at the clock at least every
        # ``retention_check_seconds``, so a wall clock that jumped (a machine waking up)
        # is noticed within one check; a test's clock wakes it whenever it moves.
        interval = timedelta(seconds=self.settings.retention_sweep_seconds)
        check = timedelta(seconds=self.settings.retention_check_seconds)
        due = self.clock.now() + interval
        while True:
            await self.clock.sleep_until(min(due, self.clock.now() + check), self._wake)
            self._wake.clear()
            if self.clock.now() < due:
                continue
            try:
                await self.sweep_all()
            except Exception:
                logger.exception("retention: periodic sweep failed")
            due = self.clock.now() + interval

    async def stop(self) -> None:
        self._closed = True
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
