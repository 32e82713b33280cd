"""Restore drills: a database's drill schedule, a drill run now, and their records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, status

from backup_api.deps import BackupDep, CurrentUser, DatabaseDep, IdPath, PageDep, StateDep
from backup_api.models import (
    DrillCreate,
    DrillEnvelope,
    DrillItem,
    DrillList,
    DrillScheduleEnvelope,
    DrillScheduleItem,
    DrillScheduleUpdate,
    MessageResponse,
)
from backup_api.repositories import Record
from backup_api.routers.responses import (
    BACKUP_NOT_COMPLETED,
    BACKUP_NOT_FOUND,
    DATABASE_NOT_FOUND,
    DRILL_MISSING_TARGET,
    DRILL_NO_COUNTS,
    DRILL_NOT_FOUND,
    DRILL_NOT_SCRATCH,
    DRILL_RECIPIENTS,
    DRILL_SCHEDULE_NOT_FOUND,
    DRILL_SOURCE_IS_SCRATCH,
    DRILL_TARGET_BUSY,
    DRILL_TARGET_NOW_BACKED_UP,
    INVALID_CRON,
    INVALID_TIMEZONE,
    JOBS_THROTTLED,
    OWNER_ONLY,
    TARGET_NOT_FOUND,
    errors,
)
from backup_api.services import drills as drills_service
from backup_api.services.ownership import load_owned

router = APIRouter(tags=["drills"])

ONE_DATABASE = (OWNER_ONLY, DATABASE_NOT_FOUND)


async def load_drill(drill_id: IdPath, user: CurrentUser, state: StateDep) -> Record:
    return await state.metadata.read(lambda c: load_owned(c, drills_service.DRILL, drill_id, user))


DrillDep = Annotated[Record, Depends(load_drill)]


@router.put(
    "/api/databases/{database_id}/drill",
    response_model=DrillScheduleEnvelope,
    summary="Set a database's restore drill",
    responses=errors(
        INVALID_CRON,
        INVALID_TIMEZONE,
        DRILL_NOT_SCRATCH,
        DRILL_TARGET_NOW_BACKED_UP,
        DRILL_RECIPIENTS,
        *ONE_DATABASE,
        TARGET_NOT_FOUND,
        DRILL_SOURCE_IS_SCRATCH,
    ),
)
async def put_drill(
    data: DrillScheduleUpdate, database: DatabaseDep, user: CurrentUser, state: StateDep
) -> DrillScheduleEnvelope:
    """Drill the database's newest completed backup on a schedule (`cron` and `timezone`
    as a backup schedule's): restored into `target_database_id` (your scratch database of
    the same engine), then every table's rows compared with the counts at dump time."""
    schedule, created = await drills_service.put_schedule(
        metadata=state.metadata,
        user=user,
        database=database,
        data=data,
        now=state.scheduler.clock.now(),
    )
    state.scheduler.wake()
    message = (
        "Restauration d'essai planifiée avec succès"
        if created
        else "Restauration d'essai mise à jour"
    )
    return DrillScheduleEnvelope(
        message=message, drill_schedule=drills_service.schedule_public(schedule)
    )


@router.get(
    "/api/databases/{database_id}/drill",
    response_model=DrillScheduleItem,
    summary="Get a database's restore drill",
    responses=errors(*ONE_DATABASE, DRILL_SCHEDULE_NOT_FOUND),
)
async def get_drill_schedule(database: DatabaseDep, state: StateDep) -> DrillScheduleItem:
    """The drill's schedule, its target and where it stands."""
    schedule = await drills_service.get_schedule(metadata=state.metadata, database=database)
    return DrillScheduleItem(drill_schedule=drills_service.schedule_public(schedule))


@router.delete(
    "/api/databases/{database_id}/drill",
    response_model=MessageResponse,
    summary="Delete a database's restore drill",
    responses=errors(*ONE_DATABASE, DRILL_SCHEDULE_NOT_FOUND),
)
async def delete_drill_schedule(database: DatabaseDep, state: StateDep) -> MessageResponse:
    """Stop drilling the database (its drills' records are kept)."""
    await drills_service.delete_schedule(metadata=state.metadata, database=database)
    return MessageResponse(message="Restauration d'essai supprimée avec succès")


@router.post(
    "/api/backups/{backup_id}/drill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DrillEnvelope,
    summary="Drill a backup now",
    responses=errors(
        DRILL_MISSING_TARGET,
        DRILL_NOT_SCRATCH,
        DRILL_TARGET_NOW_BACKED_UP,
        DRILL_RECIPIENTS,
        OWNER_ONLY,
        BACKUP_NOT_FOUND,
        TARGET_NOT_FOUND,
        BACKUP_NOT_COMPLETED,
        DRILL_NO_COUNTS,
        DRILL_TARGET_BUSY,
        JOBS_THROTTLED,
    ),
)
async def create_drill(
    backup: BackupDep,
    user: CurrentUser,
    state: StateDep,
    data: Annotated[DrillCreate | None, Body()] = None,
) -> DrillEnvelope:
    """Restore this backup into a scratch database now and check every table's rows
    (202; follow it at `GET /api/drills/{id}`). `target_database_id` may be left out
    when the backup's database has a drill set: its target is used."""
    drill = await drills_service.create_drill(
        metadata=state.metadata,
        settings=state.settings,
        queue=state.queue,
        user=user,
        backup=backup,
        target_id=None if data is None else data.target_database_id,
    )
    return DrillEnvelope(
        message="Restauration d'essai créée avec succès. Elle a commencé.", drill=drill
    )


@router.get("/api/drills", response_model=DrillList, summary="List drills", responses=errors())
async def list_drills(user: CurrentUser, state: StateDep, page: PageDep) -> DrillList:
    """List your restore drills, newest first (an admin sees all)."""
    drills = await drills_service.list_drills(
        metadata=state.metadata, user=user, limit=page.limit, offset=page.offset
    )
    return DrillList(drills=drills)


@router.get(
    "/api/drills/{drill_id}",
    response_model=DrillItem,
    summary="Get a drill",
    responses=errors(OWNER_ONLY, DRILL_NOT_FOUND),
)
async def get_drill(drill: DrillDep) -> DrillItem:
    """One drill: its status (`pending`, `passed`, `failed`), each table's expected and
    restored rows, and when failed the reason in `error_msg`."""
    return DrillItem(drill=drills_service.to_public(drill))
