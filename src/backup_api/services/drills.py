"""Restore drills: scratch targets, a database's drill schedule, drills run now, and
their records.

A scratch database is one the service overwrites freely, so marking one is guarded: the
caller confirms with its ``db_name``, and it may never be the same database on the same
server as any database that is backed up, compared by resolved address, port and
database name (two registrations of one server under different host names are the same
server). The same checks run again whenever a drill is set or started: a source
registered later may have become that server.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from backup_api import encryption
from backup_api.config import Settings
from backup_api.cron import CronSchedule
from backup_api.db import Metadata
from backup_api.exceptions import AppError, BadRequest, Conflict, Forbidden, NotFound
from backup_api.jobs.drill import is_backed_up_server
from backup_api.jobs.drill import to_public as to_public
from backup_api.jobs.queue import JobKind, JobQueue
from backup_api.models import (
    DrillPublic,
    DrillSchedulePublic,
    DrillScheduleUpdate,
    JobStatus,
    utcnow,
)
from backup_api.principals import Principal
from backup_api.repositories import Record, drills
from backup_api.services.admission import ensure_job_slot
from backup_api.services.backups import ensure_archived
from backup_api.services.ownership import DATABASE, TARGET, Resource, load_owned

DRILL: Resource[Record] = Resource(drills.get, "Restauration d'essai introuvable")
NO_DRILL = "Aucune restauration d'essai planifiée pour cette base de données"
SCRATCH_CONFIRM = (
    "Données invalides: confirm: requis pour marquer la base comme base d'essai "
    "(scratch: le service l'écrasera librement): envoyez son db_name"
)
SAME_AS_BACKED_UP = (
    "Données invalides: scratch: cette base est, sur le même serveur (adresse, port, "
    "nom), une base sauvegardée: elle ne peut pas servir de base d'essai"
)
# The body is well formed: what refuses it is the target's state (409).
NOT_SCRATCH = (
    'La base cible doit être une base d\'essai ("scratch": true), que le service écrase '
    "librement, et pas la base source"
)
TARGET_BACKED_UP = (
    "La base cible est, sur le même serveur (adresse, port, nom), une base sauvegardée: "
    "elle ne peut pas servir de base d'essai"
)
SOURCE_IS_SCRATCH = (
    "Une base d'essai (scratch) ne peut pas être la source d'une restauration d'essai"
)
RECIPIENTS = (
    "Données invalides: les sauvegardes de cette base sont chiffrées pour des "
    "destinataires age: le service n'en détient pas l'identité et ne peut pas les "
    "restaurer sans vous (une phrase secrète, qu'il détient, le permet)"
)
MISSING_TARGET = (
    "Aucune restauration d'essai planifiée pour la base de cette sauvegarde: nommez la base "
    "d'essai où restaurer (target_database_id)"
)
NO_COUNTS = (
    "Cette sauvegarde n'a pas de comptage des lignes par table (antérieure aux "
    "restaurations d'essai): rien à vérifier"
)
TARGET_BUSY = "Une sauvegarde, restauration ou restauration d'essai de la base cible est en cours"


def schedule_public(schedule: Record) -> DrillSchedulePublic:
    return DrillSchedulePublic(
        target_database_id=schedule.target_database_id,
        cron=schedule.cron,
        timezone=schedule.timezone,
        enabled=schedule.enabled,
        next_run_at=schedule.next_run_at,
        last_run_at=schedule.last_run_at,
        last_drill_id=schedule.last_drill_id,
        skipped_runs=schedule.skipped_runs,
    )


# --------------------------------------------------------------------------- scratch


async def ensure_not_backed_up(
    metadata: Metadata,
    *,
    db_type: str,
    host: str,
    port: str,
    db_name: str,
    refusal: AppError | None = None,
) -> None:
    """``refusal`` (400 by default) unless no backed-up database is this one (resolved
    address, port, name)."""
    if await is_backed_up_server(metadata, db_type=db_type, host=host, port=port, db_name=db_name):
        raise refusal or BadRequest(SAME_AS_BACKED_UP)


async def check_scratch_marking(
    metadata: Metadata, place: dict[str, Any], scratch: bool | None, confirm: str | None
) -> None:
    """For a registration or an edit that leaves the database marked ``scratch``: the
    confirmation, and that it is not a backed-up database."""
    if not scratch:
        return
    if confirm != place["db_name"]:
        raise BadRequest(SCRATCH_CONFIRM)
    await ensure_not_backed_up(
        metadata,
        db_type=place["type"],
        host=place["host"],
        port=place["port"],
        db_name=place["db_name"],
    )


def _check_target(source: Record, target: Record) -> None:
    if target.user_id != source.user_id:
        raise Forbidden()
    if not target.scratch or target.id == source.id:
        raise Conflict(NOT_SCRATCH)
    if target.type != source.type:
        raise BadRequest(
            f"Données invalides: target_database_id: la base cible est de type {target.type}, "
            f"la base source de type {source.type}"
        )


async def _check_target_place(metadata: Metadata, target: Record) -> None:
    await ensure_not_backed_up(
        metadata,
        db_type=target.type,
        host=target.host,
        port=target.port,
        db_name=target.db_name,
        refusal=Conflict(TARGET_BACKED_UP),
    )


# --------------------------------------------------------------------------- schedules


async def get_schedule(*, metadata: Metadata, database: Record) -> Record:
    database_id: int = database.id
    schedule = await metadata.read(lambda c: drills.schedule_of(c, database_id))
    if schedule is None:
        raise NotFound(NO_DRILL)
    return schedule


async def put_schedule(
    *,
    metadata: Metadata,
    user: Principal,
    database: Record,
    data: DrillScheduleUpdate,
    now: datetime,
) -> tuple[Record, bool]:
    """The saved drill schedule, and whether it is new."""
    if database.scratch:
        raise Conflict(SOURCE_IS_SCRATCH)
    if database.encryption_mode == "recipients":
        raise BadRequest(RECIPIENTS)
    target_id = data.target_database_id
    target = await metadata.read(lambda c: load_owned(c, TARGET, target_id, user))
    _check_target(database, target)
    await _check_target_place(metadata, target)
    next_slot = CronSchedule(data.cron, data.timezone).next_after(now) if data.enabled else None
    database_id: int = database.id

    def work(connection: Connection) -> tuple[Record, bool]:
        load_owned(connection, DATABASE, database_id, user)
        load_owned(connection, TARGET, target_id, user)
        existing = drills.schedule_of(connection, database_id)
        values: dict[str, Any] = {
            "target_database_id": target_id,
            "cron": data.cron,
            "timezone": data.timezone,
            "enabled": data.enabled,
            "updated_at": utcnow(),
        }
        if not data.enabled:
            values["next_run_at"] = None
        elif (
            existing is None
            or existing.cron != data.cron
            or existing.timezone != data.timezone
            or existing.next_run_at is None
        ):
            values["next_run_at"] = next_slot
        return drills.save_schedule(connection, database_id, values), existing is None

    return await metadata.write(work)


async def delete_schedule(*, metadata: Metadata, database: Record) -> None:
    database_id: int = database.id
    if not await metadata.write(lambda c: drills.delete_schedule(c, database_id)):
        raise NotFound(NO_DRILL)


# --------------------------------------------------------------------------- drills


def insert_drill(
    connection: Connection,
    settings: Settings,
    user_id: int,
    backup: Record,
    target_id: int,
) -> Record:
    """A pending drill of ``backup`` into ``target_id``, counted against the owner's
    pending jobs (429 past the limit), in the caller's unit."""
    ensure_job_slot(connection, settings, user_id)
    created = utcnow()
    values = {
        "backup_id": backup.id,
        "source_database_id": backup.database_id,
        "target_database_id": target_id,
        "status": JobStatus.PENDING.value,
        "user_id": user_id,
        "created_at": created,
        "updated_at": created,
    }
    return drills.insert_drill(connection, values)


async def create_drill(
    *,
    metadata: Metadata,
    settings: Settings,
    queue: JobQueue,
    user: Principal,
    backup: Record,
    target_id: int | None,
) -> DrillPublic:
    """Record a pending drill of ``backup`` and hand it to the queue (202)."""
    ensure_archived(backup)
    if encryption.needs_identity(backup):
        raise BadRequest(RECIPIENTS)
    if backup.table_rows is None:
        raise Conflict(NO_COUNTS)
    source_id: int | None = backup.database_id
    if source_id is None:
        raise Conflict("La base de données de cette sauvegarde a été supprimée")
    source = await metadata.read(lambda c: load_owned(c, DATABASE, source_id, user))
    if target_id is None:
        schedule = await metadata.read(lambda c: drills.schedule_of(c, source_id))
        if schedule is None:
            raise Conflict(MISSING_TARGET)
        target_id = int(schedule.target_database_id)
    chosen: int = target_id
    target = await metadata.read(lambda c: load_owned(c, TARGET, chosen, user))
    _check_target(source, target)
    await _check_target_place(metadata, target)
    if queue.database_busy(chosen):
        raise Conflict(TARGET_BUSY)
    owner_id: int = backup.user_id

    async def record_and_submit() -> Record:
        row = await metadata.write(
            lambda c: insert_drill(c, settings, owner_id, backup, chosen), exclusive=True
        )
        queue.submit(JobKind.DRILL, row.id, chosen, owner_id)
        return row

    return to_public(await asyncio.shield(record_and_submit()))


async def list_drills(
    *, metadata: Metadata, user: Principal, limit: int, offset: int
) -> list[DrillPublic]:
    """Newest first: the caller's, or everyone's for an admin."""
    owner_id = None if user.is_admin else user.id
    rows = await metadata.read(lambda c: drills.page(c, owner_id, limit, offset))
    return [to_public(row) for row in rows]
