"""The health report: metadata database, dump tools, backup volume, job counts, the
scheduler's last pass.

Every value is an English word (``ok``, ``degraded``, ``unavailable``, ``late``), as the
public ``{"status": "ok"}`` is: monitors match on them; the French is for messages.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from backup_api.dumpers.registry import DUMPERS, get_dumper
from backup_api.models import ClientStatus, HealthResponse, HealthStatus, SchedulerHealth
from backup_api.state import AppState

UNAVAILABLE = "unavailable"
#: A scheduler that made no pass for this many polling periods is late (it wakes at
#: least once a period, for the next slot or to read the schedules again).
LATE_PERIODS = 3
LATE_AT_LEAST = timedelta(minutes=2)


async def metadata_reachable(state: AppState) -> bool:
    try:
        await state.metadata.ping()
    except Exception:
        return False
    return True


async def status(state: AppState) -> tuple[bool, HealthStatus]:
    """The public answer: up (the metadata database answers) or not, nothing else."""
    healthy = await metadata_reachable(state)
    return healthy, HealthStatus(status="ok" if healthy else "degraded")


async def report(state: AppState) -> tuple[bool, HealthResponse]:
    """The administrators' answer: tools with their paths and versions, disk, jobs."""
    database = "ok" if await metadata_reachable(state) else UNAVAILABLE
    commands: dict[str, list[str]] = {}
    for db_type in DUMPERS:
        dumper = get_dumper(db_type, state.settings)
        for tool in (dumper.dump_tool, dumper.restore_tool):
            commands[tool] = dumper.version_command(tool)
    statuses = await asyncio.gather(*map(state.tool_versions.status, commands.values()))
    tools = dict(zip(commands, statuses, strict=True))
    clients = await state.pg_clients.all_installed()
    try:
        space = await state.storage.space()
        storage: dict[str, int | str] = {
            "status": "ok",
            "free_bytes": space.free_bytes,
            "total_bytes": space.total_bytes,
        }
    except OSError:
        storage = {"status": UNAVAILABLE}
    scheduler = scheduler_health(state)
    healthy_db = database == "ok"
    degraded = (
        not all(t.available for t in tools.values())
        or storage.get("status") != "ok"
        or scheduler.status != "ok"
    )
    return healthy_db, HealthResponse(
        status="ok" if healthy_db and not degraded else "degraded",
        database=database,
        tools=tools,
        pg_clients=[
            ClientStatus(
                tool=client.name,
                path=client.path,
                version=None if client.version is None else str(client.version),
            )
            for client in clients
        ],
        storage=storage,
        jobs={"running": state.queue.running_count, "queued": state.queue.queued_count},
        scheduler=scheduler,
    )


def scheduler_health(state: AppState) -> SchedulerHealth:
    """Whether the scheduler's loop still makes its passes (times on its own clock)."""
    scheduler = state.scheduler
    limit = max(
        timedelta(seconds=state.settings.scheduler_poll_seconds) * LATE_PERIODS, LATE_AT_LEAST
    )
    # Before its first pass, the time since it started counts.
    since = scheduler.last_tick or scheduler.started_at
    late = since is None or scheduler.clock.now() - since > limit
    return SchedulerHealth(status="late" if late else "ok", last_tick=scheduler.last_tick)
