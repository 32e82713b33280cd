"""A job that ends while the metadata database is away: its outcome waits for the
database instead of being lost (which left the record ``pending`` for good), then says
what happened.

The metadata database is a real one on the suite's PostgreSQL server, made unreachable
as a restart would (new connections refused, the pool's cut), while a real ``pg_dump``
is held by a table lock; the lock is released during the outage, so the job reaches its
end with nowhere to write it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from backup_api.jobs.failures import metadata_lost
from tests.support.apphelpers import Api, make_settings, pg_metadata_url, running_app, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled


def away(name: str) -> str:
    return (
        f"ALTER DATABASE {name} ALLOW_CONNECTIONS false;"
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    )


def back(name: str) -> str:
    return f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"


async def test_a_job_caught_by_a_metadata_outage_is_recorded_once_it_is_back(
    pg_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backup_api.jobs.records")
    meta = unique_name("meta")
    pg_server.create_database(meta)
    source = unique_name("outage")
    create_filled(pg_server, source)
    settings = make_settings(tmp_path, database_url=pg_metadata_url(pg_server, meta))
    try:
        async with running_app(settings) as (_, client):
            api = await Api(client).signup()
            database = await api.add_database(pg_server, source)
            with table_locked(pg_server, source):
                backup = await api.start_backup(database["id"])
                marker = f"backup:{backup['id']}@"
                await wait_until(lambda: tool_processes("pg_dump", marker))
                pg_server.execute(away(meta), "postgres")
            # The dump goes on and ends; the job finds no database to record it in.
            await wait_until(lambda: not tool_processes("pg_dump", marker))
            await wait_until(lambda: "its record waits" in caplog.text)
            pg_server.execute(back(meta), "postgres")
            record = await api.wait_backup(backup["id"])
    finally:
        pg_server.execute(back(meta), "postgres")
        pg_server.drop_database(meta)
        pg_server.drop_database(source)
    assert record["status"] == "failed"
    assert record["error_msg"] == metadata_lost("sauvegarde")
