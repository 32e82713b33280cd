"""backup.overdue: a scheduled database without a completed backup within 1.5 times its
schedule's interval is announced once per episode, driven by a clock the test moves
(real backups against the suite's PostgreSQL; failures from a port nobody listens on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from backup_api.config import Settings
from backup_api.events import BACKUP_OVERDUE, ServiceEvent
from backup_api.models import Backup, as_utc
from backup_api.overdue import schedule_interval
from tests.support.apphelpers import Api, metadata_sql, running_app, unique_name
from tests.support.clocks import TravelClock
from tests.support.servers.common import free_port

TOKEN = "jeton-prometheus-overdue"
# The scheduler, the retention sweep, the copy retrier, the overdue watch, the notifier.
LOOPS = 5
HOURLY_THRESHOLD = timedelta(minutes=90)


def stamp(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


async def finished_at(app: FastAPI, backup_id: int) -> datetime:
    """The exact end the record holds (the API shows it to the second)."""
    table = Backup.__table__  # type: ignore[attr-defined]
    rows = await metadata_sql(app, select(table.c.finished_at).where(table.c.id == backup_id))
    value: datetime = rows[0].finished_at
    return as_utc(value)


async def settle_backups(api: Api, database: dict[str, Any]) -> None:
    """Wait until no backup of ``database`` is pending (the scheduled ones fail fast)."""
    for _ in range(1200):
        response = await api.get(f"/api/backups/database/{database['id']}")
        if all(b["status"] != "pending" for b in response.json()["backups"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a backup stayed pending")


async def move_port(api: Api, database: dict[str, Any], server: Any, port: int) -> None:
    response = await api.put(
        f"/api/databases/{database['id']}",
        json={"port": str(port), "password": server.password},
    )
    assert response.status_code == 200, response.text


async def overdue_gauge(api: Api) -> dict[str, float]:
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return {
        sample.labels["database_id"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "backup_api_backup_overdue"
    }


async def test_overdue_is_announced_once_per_episode(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("overdue")
    pg_server.create_database(source)
    closed = free_port()
    clock = TravelClock(loops=LOOPS)
    settings = settings_factory(schedule_retries=0, metrics_token=TOKEN)
    async with running_app(settings, clock=clock) as (app, client):
        heard: list[ServiceEvent] = []
        app.state.backup_api.events.subscribe(
            lambda event: heard.append(event) if event.type == BACKUP_OVERDUE else None
        )
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        schedule = {"cron": "0 * * * *", "timezone": "Europe/Paris", "enabled": True}
        response = await alice.put(f"/api/databases/{database['id']}/schedule", json=schedule)
        assert response.status_code == 200, response.text
        first = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert first["status"] == "completed"
        first_end = await finished_at(app, first["id"])
        # From now on the scheduled backups fail: the server is "down".
        await move_port(alice, database, pg_server, closed)

        # Just short of 1.5 hours without success: not overdue, whatever failed meanwhile.
        clock.travel_to(first_end + HOURLY_THRESHOLD - timedelta(seconds=1))
        await clock.settled()
        await settle_backups(alice, database)
        failed = (await alice.get(f"/api/backups/database/{database['id']}")).json()["backups"]
        assert any(b["trigger"] == "schedule" and b["status"] == "failed" for b in failed)
        assert heard == []
        assert await overdue_gauge(alice) == {str(database["id"]): 0.0}

        # At 1.5 hours: announced, once, to the owner.
        clock.travel_to(first_end + HOURLY_THRESHOLD)
        await clock.settled()
        assert len(heard) == 1
        assert heard[0].user_id == alice.user["id"]
        assert heard[0].data == {
            "database": {"id": database["id"], "name": database["name"], "type": "postgresql"},
            "schedule": {
                "id": heard[0].data["schedule"]["id"],
                "cron": "0 * * * *",
                "timezone": "Europe/Paris",
            },
            "last_success_at": stamp(first_end),
            "overdue_since": stamp(first_end + HOURLY_THRESHOLD),
        }
        assert await overdue_gauge(alice) == {str(database["id"]): 1.0}
        # Checked again (the clock woke every loop): the same episode, not announced again.
        clock.travel_to(clock.now())
        await clock.settled()
        assert len(heard) == 1

        # Recovered: the server is back and a backup completes.
        await settle_backups(alice, database)
        await move_port(alice, database, pg_server, pg_server.port)
        # Records keep whole seconds: the recovery must end in a later second than the first
        # success, or it would not move the deadline (the clock stands at first_end + 1.5 h).
        while datetime.now(UTC) < first_end + timedelta(seconds=1):
            await asyncio.sleep(0.05)
        second = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert second["status"] == "completed"
        second_end = await finished_at(app, second["id"])
        clock.travel_to(clock.now())
        await clock.settled()
        assert len(heard) == 1
        gauge = await overdue_gauge(alice)
        assert gauge == {str(database["id"]): 0.0}

        # Down again, and 1.5 hours later: a new episode, announced.
        await move_port(alice, database, pg_server, closed)
        clock.travel_to(second_end + HOURLY_THRESHOLD)
        await clock.settled()
        assert len(heard) == 2
        assert heard[1].data["last_success_at"] == stamp(second_end)
        assert heard[1].data["overdue_since"] == stamp(second_end + HOURLY_THRESHOLD)
        await settle_backups(alice, database)


async def test_a_schedule_gets_its_first_chance(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    """Never backed up: overdue 1.5 intervals after the schedule was created, and a
    disabled schedule is not watched."""
    clock = TravelClock(loops=LOOPS)
    async with running_app(settings_factory(schedule_retries=0), clock=clock) as (app, client):
        heard: list[ServiceEvent] = []
        app.state.backup_api.events.subscribe(
            lambda event: heard.append(event) if event.type == BACKUP_OVERDUE else None
        )
        alice = await Api(client).signup()
        # Nobody listens there: every scheduled backup fails.
        database = await alice.add_database(pg_server, "postgres", port=str(free_port()))
        paused = await alice.add_database(pg_server, "postgres", port=str(free_port()))
        url = f"/api/databases/{database['id']}/schedule"
        assert (await alice.put(url, json={"cron": "@daily"})).status_code == 200
        body = {"cron": "@daily", "enabled": False}
        assert (await alice.put(f"/api/databases/{paused['id']}/schedule", json=body)).is_success
        rows = await metadata_sql(
            app, "SELECT created_at FROM schedules WHERE database_id = :id", id=database["id"]
        )
        created = rows[0].created_at
        created_at = as_utc(
            created if isinstance(created, datetime) else datetime.fromisoformat(created)
        )

        clock.travel_to(created_at + timedelta(hours=35))
        await clock.settled()
        await settle_backups(alice, database)
        assert heard == []
        clock.travel_to(created_at + timedelta(hours=36))
        await clock.settled()
        await settle_backups(alice, database)
        assert [event.data["database"]["id"] for event in heard] == [database["id"]]
        assert heard[0].data["last_success_at"] is None
        assert heard[0].data["overdue_since"] == stamp(created_at + timedelta(hours=36))


def test_the_interval_is_the_gap_between_the_next_two_slots() -> None:
    noon = datetime(2026, 3, 27, 12, tzinfo=UTC)
    assert schedule_interval("0 * * * *", "UTC", noon) == timedelta(hours=1)
    assert schedule_interval("@weekly", "UTC", noon) == timedelta(days=7)
    assert schedule_interval("*/15 * * * *", "Europe/Paris", noon) == timedelta(minutes=15)
    # 03:00 in Paris on the 28th (CET), then on the 29th (CEST): a 23-hour day.
    assert schedule_interval("0 3 * * *", "Europe/Paris", noon) == timedelta(hours=23)
    assert schedule_interval("0 3 * * *", "Europe/Paris", noon + timedelta(days=2)) == timedelta(
        hours=24
    )
