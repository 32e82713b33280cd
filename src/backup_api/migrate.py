"""Schema migrations (alembic), runnable from the app's own event loop or the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SCRIPT_LOCATION = "backup_api:migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(connection: Any) -> None:
    config = alembic_config()
    # env.py runs on this connection instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def run_unconstrained(connection: AsyncConnection, work: Callable[[Connection], Any]) -> None:
    """``work`` in one transaction; on SQLite with foreign keys off meanwhile.

    Alembic changes a SQLite table by recreating it (copy, drop the old one, rename). With
    foreign keys on, that drop would delete or null out every row that references the
    table. The pragma is ignored inside a transaction, so it is set before one begins, and
    set back on the same connection (the pool hands it out again); the result's integrity
    is checked before the commit.
    """
    if connection.dialect.name != "sqlite":
        async with connection.begin():
            await connection.run_sync(work)
        return
    await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    await connection.commit()
    try:
        async with connection.begin():
            await connection.run_sync(work)
            result = await connection.exec_driver_sql("PRAGMA foreign_key_check")
            if result.first() is not None:
                raise RuntimeError("migration left rows whose foreign key points nowhere")
    finally:
        await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        await connection.commit()


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await run_unconstrained(connection, _upgrade)
