"""A database's schedule: saved, read and removed (the scheduler runs it)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.cron import CronSchedule
from backup_api.exceptions import NotFound
from backup_api.models import Database, Schedule, SchedulePublic, ScheduleUpdate, utcnow

NO_SCHEDULE = "Aucune planification pour cette base de données"


def to_public(schedule: Schedule) -> SchedulePublic:
    return SchedulePublic(
        cron=schedule.cron,
        timezone=schedule.timezone,
        enabled=schedule.enabled,
        next_run_at=schedule.next_run_at,
        last_run_at=schedule.last_run_at,
        last_backup_id=schedule.last_backup_id,
        skipped_runs=schedule.skipped_runs,
        next_retry_at=schedule.retry_at,
    )


async def _find(session: AsyncSession, database: Database) -> Schedule | None:
    result = await session.exec(select(Schedule).where(Schedule.database_id == database.id))
    return result.first()


async def get_schedule(*, session: AsyncSession, database: Database) -> Schedule:
    schedule = await _find(session, database)
    if schedule is None:
        raise NotFound(NO_SCHEDULE)
    return schedule


async def put_schedule(
    *, session: AsyncSession, database: Database, data: ScheduleUpdate, now: datetime
) -> tuple[Schedule, bool]:
    """The saved schedule, and whether it is new.

    The next slot is counted from now when the timing changes (or the schedule is
    enabled again: slots missed while disabled are not caught up); otherwise a slot
    already due keeps its place.
    """
    assert database.id is not None
    schedule = await _find(session, database)
    created = schedule is None
    if schedule is None:
        schedule = Schedule(database_id=database.id, cron=data.cron, timezone=data.timezone)
        timing_changed = True
    else:
        timing_changed = (
            schedule.cron != data.cron
            or schedule.timezone != data.timezone
            or not schedule.enabled
            or schedule.next_run_at is None
        )
    schedule.cron = data.cron
    schedule.timezone = data.timezone
    schedule.enabled = data.enabled
    if not data.enabled:
        schedule.next_run_at = None
        schedule.retry_at = None
    elif timing_changed:
        schedule.next_run_at = CronSchedule(data.cron, data.timezone).next_after(now)
    schedule.updated_at = utcnow()
    session.add(schedule)
    await session.flush()
    return schedule, created


async def delete_schedule(*, session: AsyncSession, database: Database) -> None:
    schedule = await get_schedule(session=session, database=database)
    await session.delete(schedule)
    await session.flush()
