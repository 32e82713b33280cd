"""The health report: metadata database, dump tools, backup volume, job counts."""

from __future__ import annotations

import asyncio
import shutil

from sqlalchemy import text

from backup_api.dumpers.registry import DUMPERS, get_dumper
from backup_api.models import HealthResponse, ToolStatus
from backup_api.state import AppState


async def tool_status(argv: list[str]) -> ToolStatus:
    path = shutil.which(argv[0])
    if path is None:
        return ToolStatus(available=False, path=None, version=None)
    try:
        process = await asyncio.create_subprocess_exec(
            path,
            *argv[1:],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=5)
    except (OSError, TimeoutError):
        return ToolStatus(available=False, path=path, version=None)
    version = out.decode("utf-8", "replace").strip().splitlines()
    return ToolStatus(
        available=process.returncode == 0, path=path, version=version[0] if version else None
    )


async def report(state: AppState) -> tuple[bool, HealthResponse]:
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "indisponible"
    tools: dict[str, ToolStatus] = {}
    for db_type in DUMPERS:
        dumper = get_dumper(db_type, state.settings)
        for tool in (dumper.dump_tool, dumper.restore_tool):
            tools[tool] = await tool_status(dumper.version_command(tool))
    try:
        space = await state.storage.space()
        storage: dict[str, int | str] = {
            "status": "ok",
            "free_bytes": space.free_bytes,
            "total_bytes": space.total_bytes,
        }
    except OSError:
        storage = {"status": "indisponible"}
    healthy_db = database == "ok"
    degraded = not all(t.available for t in tools.values()) or storage.get("status") != "ok"
    return healthy_db, HealthResponse(
        status="ok" if healthy_db and not degraded else "degraded",
        database=database,
        tools=tools,
        storage=storage,
        jobs={"running": state.runner.running_count, "queued": state.runner.queued_count},
    )
