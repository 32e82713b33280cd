"""A database's schedule: when it is backed up on its own."""

from __future__ import annotations

from fastapi import APIRouter

from backup_api import audit
from backup_api.deps import CurrentUser, DatabaseDep, StateDep
from backup_api.models import MessageResponse, ScheduleEnvelope, ScheduleItem, ScheduleUpdate
from backup_api.routers.responses import (
    DATABASE_NOT_FOUND,
    INVALID_CRON,
    INVALID_TIMEZONE,
    OWNER_ONLY,
    SCHEDULE_NOT_FOUND,
    errors,
)
from backup_api.services import schedules as schedules_service

router = APIRouter(prefix="/api/databases/{database_id}/schedule", tags=["schedules"])

ONE_DATABASE = (OWNER_ONLY, DATABASE_NOT_FOUND)


@router.put(
    "",
    response_model=ScheduleEnvelope,
    summary="Set a database's schedule",
    responses=errors(INVALID_CRON, INVALID_TIMEZONE, *ONE_DATABASE),
)
async def put_schedule(
    data: ScheduleUpdate, database: DatabaseDep, user: CurrentUser, state: StateDep
) -> ScheduleEnvelope:
    """Create or replace the schedule: `cron` (five fields or `@hourly`, `@daily`,
    `@weekly`, `@monthly`) read in `timezone` (IANA, default `UTC`), and an optional
    `heartbeat_url` pinged when a scheduled backup ends (`<url>/fail` on failure). Each
    slot runs once;
    slots missed while the service was stopped give one catch-up run; a slot that finds a
    backup of the database pending or running is skipped and counted in `skipped_runs`."""
    heartbeat = await schedules_service.heartbeat_values(
        metadata=state.metadata,
        settings=state.settings,
        keys=state.keys,
        owner_id=database.user_id,
        data=data,
    )
    schedule, created = await schedules_service.put_schedule(
        metadata=state.metadata,
        user=user,
        database_id=database.id,
        data=data,
        now=state.scheduler.clock.now(),
        heartbeat=heartbeat,
    )
    # Committed: the scheduler reads the new timing.
    state.scheduler.wake()
    audit.record(
        audit.SCHEDULE_UPDATE,
        audit.SUCCESS,
        target_type=audit.DATABASE,
        target_id=database.id,
        created=created,
    )
    message = "Planification créée avec succès" if created else "Planification mise à jour"
    return ScheduleEnvelope(message=message, schedule=schedules_service.to_public(schedule))


@router.get(
    "",
    response_model=ScheduleItem,
    summary="Get a database's schedule",
    responses=errors(*ONE_DATABASE, SCHEDULE_NOT_FOUND),
)
async def get_schedule(database: DatabaseDep, state: StateDep) -> ScheduleItem:
    """The schedule and where it stands: next and last run, skipped slots."""
    schedule = await schedules_service.get_schedule(metadata=state.metadata, database=database)
    return ScheduleItem(schedule=schedules_service.to_public(schedule))


@router.delete(
    "",
    response_model=MessageResponse,
    summary="Delete a database's schedule",
    responses=errors(*ONE_DATABASE, SCHEDULE_NOT_FOUND),
)
async def delete_schedule(database: DatabaseDep, state: StateDep) -> MessageResponse:
    """Stop backing the database up on a schedule (its backups are kept)."""
    await schedules_service.delete_schedule(metadata=state.metadata, database=database)
    audit.record(
        audit.SCHEDULE_DELETE, audit.SUCCESS, target_type=audit.DATABASE, target_id=database.id
    )
    return MessageResponse(message="Planification supprimée avec succès")
