"""A database's schedule: saved, read and removed (the scheduler runs it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from backup_api.config import Settings
from backup_api.cron import CronSchedule
from backup_api.db import Metadata
from backup_api.exceptions import BadRequest, NotFound
from backup_api.models import SchedulePublic, ScheduleUpdate, utcnow
from backup_api.netpolicy import HostNotAllowedError
from backup_api.notifications import outbound
from backup_api.principals import Principal
from backup_api.repositories import Record, schedules, users
from backup_api.security import Keys, encrypt_secret
from backup_api.services.ownership import DATABASE, load_owned

NO_SCHEDULE = "Aucune planification pour cette base de données"


def to_public(schedule: Record) -> SchedulePublic:
    return SchedulePublic(
        cron=schedule.cron,
        timezone=schedule.timezone,
        enabled=schedule.enabled,
        next_run_at=schedule.next_run_at,
        last_run_at=schedule.last_run_at,
        last_backup_id=schedule.last_backup_id,
        skipped_runs=schedule.skipped_runs,
        next_retry_at=schedule.retry_at,
        heartbeat_url=schedule.heartbeat_url_masked,
    )


async def heartbeat_values(
    *, metadata: Metadata, settings: Settings, keys: Keys, owner_id: int, data: ScheduleUpdate
) -> dict[str, Any]:
    """The heartbeat columns a PUT sets: none when it omits ``heartbeat_url`` (the stored
    one is kept), cleared by null, else the URL checked under the owner's outbound rule
    (as each ping will be), encrypted, and its masked form."""
    if "heartbeat_url" not in data.model_fields_set:
        return {}
    url = data.heartbeat_url
    if url is None:
        return {"heartbeat_url_encrypted": None, "heartbeat_url_masked": None}
    owner_is_admin = await metadata.read(lambda c: users.is_admin(c, owner_id))
    try:
        await outbound.pin(
            url, owner_is_admin=owner_is_admin, allowed=settings.allowed_outbound_hosts
        )
    except HostNotAllowedError as exc:
        raise BadRequest(f"Données invalides: heartbeat_url: {exc}") from None
    return {
        "heartbeat_url_encrypted": encrypt_secret(keys, url),
        "heartbeat_url_masked": outbound.mask_url(url),
    }


async def get_schedule(*, metadata: Metadata, database: Record) -> Record:
    database_id: int = database.id
    schedule = await metadata.read(lambda c: schedules.of_database(c, database_id))
    if schedule is None:
        raise NotFound(NO_SCHEDULE)
    return schedule


def _timing_changed(schedule: Record | None, data: ScheduleUpdate) -> bool:
    return (
        schedule is None
        or schedule.cron != data.cron
        or schedule.timezone != data.timezone
        or not schedule.enabled
        or schedule.next_run_at is None
    )


async def put_schedule(
    *,
    metadata: Metadata,
    user: Principal,
    database_id: int,
    data: ScheduleUpdate,
    now: datetime,
    heartbeat: dict[str, Any] | None = None,
) -> tuple[Record, bool]:
    """The saved schedule, and whether it is new.

    The next slot is counted from now when the timing changes (or the schedule is
    enabled again: slots missed while disabled are not caught up); otherwise a slot
    already due keeps its place. ``heartbeat``: the columns ``heartbeat_values`` gave.
    """
    # Counted before the unit: reading the zone's rules is no work for a transaction.
    next_slot = CronSchedule(data.cron, data.timezone).next_after(now) if data.enabled else None

    def work(connection: Connection) -> tuple[Record, bool]:
        # In the write's own unit: the database is still there (and still the caller's)
        # when its schedule is written.
        load_owned(connection, DATABASE, database_id, user)
        schedule = schedules.of_database(connection, database_id)
        values: dict[str, Any] = {
            "cron": data.cron,
            "timezone": data.timezone,
            "enabled": data.enabled,
            "updated_at": utcnow(),
            **(heartbeat or {}),
        }
        if not data.enabled:
            values.update(next_run_at=None, retry_at=None)
        elif _timing_changed(schedule, data):
            values["next_run_at"] = next_slot
        return schedules.save(connection, database_id, values), schedule is None

    return await metadata.write(work)


async def delete_schedule(*, metadata: Metadata, database: Record) -> None:
    database_id: int = database.id
    if not await metadata.write(lambda c: schedules.delete_of_database(c, database_id)):
        raise NotFound(NO_SCHEDULE)
