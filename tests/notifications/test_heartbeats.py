"""Heartbeats: a schedule's ``heartbeat_url`` (stored encrypted, shown masked) is pinged
when a real scheduled backup completes, and at ``<url>/fail`` when one fails; under the
outbound rule like every other target."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from backup_api.config import Settings
from backup_api.models import Schedule
from backup_api.security import decrypt_secret
from tests.notifications.receiver import receiving
from tests.support.apphelpers import Api, metadata_sql, running_app, unique_name
from tests.support.clocks import TravelClock

START = datetime(2026, 6, 1, 12, tzinfo=UTC)


async def last_backup(api: Api, database: dict[str, Any], previous: int | None) -> dict[str, Any]:
    """The backup the schedule started after ``previous``, once it has ended."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = await api.get(f"/api/databases/{database['id']}/schedule")
        last = response.json()["schedule"]["last_backup_id"]
        if last is not None and last != previous:
            return await api.wait_backup(last)
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule started no backup")


async def test_heartbeat_on_success_and_fail(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("heartbeat")
    pg_server.create_database(source)
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    clock = TravelClock(START, loops=5)
    with receiving() as receiver:
        check = receiver.url("/ping/0f1e2d3c-check-uuid")
        async with running_app(settings, clock=clock) as (app, client):
            alice = await Api(client).signup()
            database = await alice.add_database(pg_server, source)
            url = f"/api/databases/{database['id']}/schedule"
            response = await alice.put(url, json={"cron": "0 * * * *", "heartbeat_url": check})
            assert response.status_code == 200, response.text
            schedule = response.json()["schedule"]
            assert schedule["heartbeat_url"] == f"http://127.0.0.1:{receiver.port}/***"
            assert "check-uuid" not in response.text
            assert (await alice.get(url)).json()["schedule"] == schedule
            table = Schedule.__table__  # type: ignore[attr-defined]
            [row] = await metadata_sql(
                app, select(table.c.heartbeat_url_encrypted, table.c.heartbeat_url_masked)
            )
            assert "check-uuid" not in row.heartbeat_url_encrypted
            assert decrypt_secret(app.state.backup_api.keys, row.heartbeat_url_encrypted) == check

            # A manual backup is no heartbeat.
            manual = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
            assert manual["status"] == "completed"

            # Changing the timing keeps the heartbeat (omitted); the slot's backup pings it.
            response = await alice.put(url, json={"cron": "0 * * * *", "timezone": "UTC"})
            assert response.json()["schedule"]["heartbeat_url"] == schedule["heartbeat_url"]
            clock.travel_to(START + timedelta(hours=1))
            backup = await last_backup(alice, database, None)
            assert (backup["status"], backup["trigger"]) == ("completed", "schedule")
            [ping] = await receiver.wait_for(1)
            assert (ping.method, ping.path) == ("GET", "/ping/0f1e2d3c-check-uuid")

            # The database gone from its server, the next slot fails: <url>/fail.
            pg_server.drop_database(source)
            await clock.settled()
            clock.travel_to(START + timedelta(hours=2))
            failed = await last_backup(alice, database, backup["id"])
            assert (failed["status"], failed["trigger"]) == ("failed", "schedule")
            fail = (await receiver.wait_for(2))[1]
            assert (fail.method, fail.path) == ("GET", "/ping/0f1e2d3c-check-uuid/fail")
            assert len(receiver.requests) == 2

            # null removes it.
            response = await alice.put(url, json={"cron": "0 * * * *", "heartbeat_url": None})
            assert response.json()["schedule"]["heartbeat_url"] is None


async def test_heartbeat_url_checked(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("heartbeat_rule")
    pg_server.create_database(source)
    async with running_app(settings_factory()) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        url = f"/api/databases/{database['id']}/schedule"
        for heartbeat, message in [
            (
                "http://127.0.0.1:9/ping/secret-uuid",
                "Données invalides: heartbeat_url: adresse non publique (privée, locale ou "
                "réservée) non autorisée: 127.0.0.1",
            ),
            ("ftp://example.com/x", "Données invalides: heartbeat_url: URL invalide (http"),
        ]:
            response = await alice.put(url, json={"cron": "@daily", "heartbeat_url": heartbeat})
            assert response.status_code == 400, response.text
            assert response.json()["error"].startswith(message), response.json()
            assert "secret-uuid" not in response.text
        assert (await alice.get(url)).status_code == 404
    pg_server.drop_database(source)
