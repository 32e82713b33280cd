"""The schedules' loop: starts each due slot's backup once, and retries failed ones.

Everything it knows lives in the metadata database (``schedules``), so a restart, or a
second service process on the same database, picks up where things stand:

- A slot is claimed by one conditional update (``next_run_at`` moved from the value read
  to the next slot after now); a process whose update changes no row lost the race and
  does nothing. The claim and the backup's record are one transaction: a slot is never
  claimed without its backup, nor recorded twice.
- The next slot is counted from now, so slots missed while no process ran give one
  catch-up run, not one per slot.
- A slot whose database already has a backup pending (queued or running) is skipped and
  counted, never queued behind it; so is one that the account's limits refuse.
- A failed scheduled backup gets ``schedule_retries`` new attempts,
  ``schedule_retry_delay_seconds`` apart, each a backup of its own (``trigger: retry``);
  the next slot ends any retries left.

Backups go through the same admission as ``POST /api/backups/database/{id}`` (pending
cap, quota, free-space reserve) and the same job queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from backup_api import encryption
from backup_api.clock import Clock
from backup_api.config import Settings
from backup_api.cron import CronError, CronSchedule
from backup_api.db import Metadata
from backup_api.events import SCHEDULE_SKIPPED, EventBus, ServiceEvent, database_summary
from backup_api.exceptions import AppError, InsufficientStorage
from backup_api.jobs.queue import JobKind, JobQueue
from backup_api.jobs.records import JobCompleted, JobEvent, JobFailed
from backup_api.models import BackupTrigger
from backup_api.principals import Principal
from backup_api.repositories import Record, backups, databases, drills, schedules
from backup_api.services.admission import ensure_disk_reserve
from backup_api.services.backups import insert_backup
from backup_api.services.drills import insert_drill
from backup_api.storage.base import Storage

logger = logging.getLogger("backup_api.scheduler")

_MIN_NAP = timedelta(seconds=1)


def as_utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ALREADY_PENDING = "une sauvegarde de cette base est déjà en attente ou en cours"
_BELOW_RESERVE = "l'espace libre du dossier des sauvegardes est sous sa réserve"


@dataclass(frozen=True)
class _Skipped:
    """A slot claimed but not run: why (French, for the owner), and its database."""

    reason: str
    database: dict[str, Any] | None


@dataclass(frozen=True)
class Due:
    """A slot (``trigger`` schedule) or a retry that a pass found due."""

    schedule_id: int
    database_id: int
    owner: Principal
    cron: str
    timezone: str
    trigger: BackupTrigger
    # The value read, exactly as stored: the claim's condition compares with it.
    mark: Any


class Scheduler:
    def __init__(
        self,
        *,
        clock: Clock,
        settings: Settings,
        metadata: Metadata,
        storage: Storage,
        events: EventBus | None = None,
    ) -> None:
        self.clock = clock
        self._events = events
        self._settings = settings
        self._metadata = metadata
        self._storage = storage
        self._wake = asyncio.Event()
        self._queue: JobQueue | None = None
        self._task: asyncio.Task[None] | None = None
        #: When the loop started, and when its latest pass began (the clock's time):
        #: /health tells an admin whether the scheduler still runs.
        self.started_at: datetime | None = None
        self.last_tick: datetime | None = None

    # ------------------------------------------------------------------ life
    def start(self, queue: JobQueue) -> None:
        self._queue = queue
        self.started_at = self.clock.now()
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Look again now (a schedule changed, a backup ended)."""
        self._wake.set()

    async def job_event(self, event: JobEvent) -> None:
        """A listener of the job records: a backup that ended wakes the scheduler, so a
        failed scheduled backup gets its retry planned at once."""
        if event.kind is JobKind.BACKUP and isinstance(event, (JobCompleted, JobFailed)):
            self.wake()

    async def _loop(self) -> None:
        poll = timedelta(seconds=self._settings.scheduler_poll_seconds)
        while True:
            self._wake.clear()
            started = self.clock.now()
            self.last_tick = started
            try:
                wake_at = await self.run_due(started)
            except Exception:
                logger.exception("scheduler pass failed")
                wake_at = None
            if wake_at is not None and wake_at <= started:
                # Due when this pass began and still unclaimed: no busy loop over it.
                wake_at = started + _MIN_NAP
            # Besides the next slot, look again now and then: other processes may have
            # changed schedules, and backups they ran may have failed.
            deadline = self.clock.now() + poll
            if wake_at is not None:
                deadline = min(deadline, wake_at)
            await self.clock.sleep_until(deadline, self._wake)

    # ------------------------------------------------------------------ one pass
    async def run_due(self, now: datetime) -> datetime | None:
        """Plan the retries of failed backups, start what is due at ``now``; the next
        instant something will be due (None: nothing scheduled). Any errors are logged
        and the next pass tries again."""
        failed = False
        try:
            await self._plan_retries(now)
        except Exception:
            logger.exception("could not plan the retries of failed scheduled backups")
            failed = True
        rows = await self._metadata.read(lambda c: schedules.due(c, now))
        for row in rows:
            for due in _dues(row, now):
                try:
                    await self._start(due, now)
                except Exception:
                    logger.exception("schedule %s: could not start its backup", due.schedule_id)
                    failed = True
        drill_rows = await self._metadata.read(lambda c: drills.due(c, now))
        for row in drill_rows:
            try:
                await self._start_drill(row, now)
            except Exception:
                logger.exception("drill schedule %s: could not start its drill", row.id)
                failed = True
        if failed:
            return None
        nearest = [
            *await self._metadata.read(schedules.next_wake),
            await self._metadata.read(drills.next_wake),
        ]
        instants = [as_utc(value) for value in nearest if value is not None]
        return min(instants) if instants else None

    async def _plan_retries(self, now: datetime) -> None:
        retries = self._settings.schedule_retries
        if retries <= 0:
            return
        retry_at = now + timedelta(seconds=self._settings.schedule_retry_delay_seconds)
        # Read first: most passes find nothing, and then take no write lock.
        failed = await self._metadata.read(lambda c: schedules.failed_without_retry(c, retries))
        if not failed:
            return

        def plan(connection: Connection) -> None:
            for row in failed:
                if schedules.plan_retry(
                    connection, row.id, row.last_backup_id, row.retry_attempt, retry_at
                ):
                    logger.info(
                        "schedule %s: backup %s failed, retry %d of %d at %s",
                        row.id,
                        row.last_backup_id,
                        row.retry_attempt + 1,
                        retries,
                        retry_at.isoformat(),
                    )

        await self._metadata.write(plan)

    async def _start(self, due: Due, now: datetime) -> None:
        disk_ok = True
        try:
            await ensure_disk_reserve(self._storage, self._settings)
        except InsufficientStorage:
            disk_ok = False

        async def claim_and_submit() -> None:
            claim = await self._metadata.write(
                lambda c: self._claim(c, due, now, disk_ok), exclusive=True
            )
            if isinstance(claim, _Skipped):
                self._announce_skip(due, claim)
            elif claim is not None and self._queue is not None:
                self._queue.submit(JobKind.BACKUP, claim.id, due.database_id, due.owner.id)

        # Once the record is committed the job is submitted, even if the loop is stopped
        # meanwhile (a record left pending would run at the next start anyway).
        await asyncio.shield(claim_and_submit())

    async def _start_drill(self, row: Record, now: datetime) -> None:
        """Claim a drill schedule's slot and record its drill of the source's newest
        completed backup, in one transaction (a slot with nothing to drill, or whose
        target is busy or no longer a scratch database, is skipped and counted)."""
        try:
            next_slot: datetime | None = CronSchedule(row.cron, row.timezone).next_after(now)
        except CronError:
            logger.error("drill schedule %s: %r can no longer be read", row.id, row.cron)
            next_slot = None
        queue = self._queue
        target_busy = queue is not None and queue.database_busy(row.target_database_id)

        def claim(connection: Connection) -> Record | str | None:
            if not drills.claim_slot(connection, row.id, row.next_run_at, next_slot):
                return None
            backup = drills.newest_completed_backup(connection, row.database_id)
            target = databases.get(connection, row.target_database_id)
            reason = None
            if backup is None or backup.table_rows is None:
                reason = "aucune sauvegarde terminée avec comptage des lignes à vérifier"
            elif encryption.needs_identity(backup):
                reason = "sauvegarde chiffrée pour des destinataires age"
            elif target is None or not target.scratch:
                reason = "la base cible n'est plus une base d'essai"
            elif target_busy or drills.pending_on(connection, row.target_database_id):
                reason = "la base cible a déjà un travail en attente ou en cours"
            drill = None
            if reason is None:
                assert backup is not None
                try:
                    drill = insert_drill(
                        connection, self._settings, row.owner_id, backup, row.target_database_id
                    )
                except AppError as exc:
                    reason = f"refusée ({exc.status_code}): {exc.message}"
            if drill is None:
                drills.count_skipped(connection, row.id)
                return str(reason)
            drills.record_run(connection, row.id, {"last_run_at": now, "last_drill_id": drill.id})
            return drill

        async def claim_and_submit() -> None:
            claimed = await self._metadata.write(claim, exclusive=True)
            if isinstance(claimed, str):
                logger.info("drill schedule %s: slot skipped: %s", row.id, claimed)
            elif claimed is not None and queue is not None:
                queue.submit(JobKind.DRILL, claimed.id, row.target_database_id, row.owner_id)
                logger.info("drill schedule %s: drill %s started", row.id, claimed.id)

        await asyncio.shield(claim_and_submit())

    def _announce_skip(self, due: Due, skipped: _Skipped) -> None:
        if self._events is None:
            return
        data = {
            "schedule": {"cron": due.cron, "timezone": due.timezone, "trigger": due.trigger.value},
            "database": skipped.database,
            "reason": skipped.reason,
        }
        self._events.publish(ServiceEvent(SCHEDULE_SKIPPED, due.owner.id, data))

    def _claim(
        self, connection: Connection, due: Due, now: datetime, disk_ok: bool
    ) -> Record | _Skipped | None:
        """Claim ``due`` and record its backup, in the caller's transaction; the backup's
        row, ``_Skipped`` when the slot is skipped, or None when another process claimed
        it first."""
        if due.trigger is BackupTrigger.SCHEDULE:
            claimed = schedules.claim_slot(
                connection, due.schedule_id, due.mark, self._next_slot(due, now)
            )
        else:
            claimed = schedules.claim_retry(connection, due.schedule_id, due.mark)
        if not claimed:
            return None
        reason = None
        if backups.has_pending(connection, due.database_id):
            reason = _ALREADY_PENDING
        elif not disk_ok:
            reason = _BELOW_RESERVE
        row = None
        if reason is None:
            try:
                row = insert_backup(
                    connection, self._settings, due.owner, due.database_id, due.trigger
                )
            except AppError as exc:
                reason = f"refusée ({exc.status_code}): {exc.message}"
        if row is None:
            schedules.count_skipped(connection, due.schedule_id)
            logger.info("schedule %s: %s skipped: %s", due.schedule_id, due.trigger, reason)
            database = databases.get(connection, due.database_id)
            return _Skipped(str(reason), database_summary(database))
        values: dict[str, Any] = {"last_run_at": now, "last_backup_id": row.id}
        if due.trigger is BackupTrigger.SCHEDULE:
            # A new slot: the retries of the previous one end here.
            values.update(retry_attempt=0, retry_at=None)
        schedules.record_run(connection, due.schedule_id, values)
        logger.info("schedule %s: %s backup %s started", due.schedule_id, due.trigger, row.id)
        return row

    @staticmethod
    def _next_slot(due: Due, now: datetime) -> datetime | None:
        try:
            return CronSchedule(due.cron, due.timezone).next_after(now)
        except CronError:
            # Valid when saved; a zone can leave the system's data. The schedule stops.
            logger.error("schedule %s: %r can no longer be read", due.schedule_id, due.cron)
            return None


def _dues(row: Record, now: datetime) -> list[Due]:
    owner = Principal(id=row.owner_id, role=row.owner_role)
    common = {
        "schedule_id": row.id,
        "database_id": row.database_id,
        "owner": owner,
        "cron": row.cron,
        "timezone": row.timezone,
    }
    dues = []
    # The slot first: it ends the retries of the previous one, so a retry due at the same
    # time then finds nothing to claim.
    if row.next_run_at is not None and as_utc(row.next_run_at) <= now:
        dues.append(Due(**common, trigger=BackupTrigger.SCHEDULE, mark=row.next_run_at))
    if row.retry_at is not None and as_utc(row.retry_at) <= now:
        dues.append(Due(**common, trigger=BackupTrigger.RETRY, mark=row.retry_at))
    return dues
