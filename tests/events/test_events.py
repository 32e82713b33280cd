"""The service event bus: what its producers publish, seen by a subscriber (real backups and
restores with the real tools, the scheduler and retention driven by a clock the test moves)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import update

from backup_api.config import Settings
from backup_api.events import EventBus, ServiceEvent
from backup_api.models import Backup
from tests.support.apphelpers import Api, metadata_sql, running_app, unique_name
from tests.support.clocks import TravelClock
from tests.support.locks import table_locked, wait_until
from tests.support.sample_data import create_filled


def collect(app: FastAPI) -> list[ServiceEvent]:
    heard: list[ServiceEvent] = []
    bus: EventBus = app.state.backup_api.events
    bus.subscribe(heard.append)
    return heard


def of_type(heard: list[ServiceEvent], kind: str) -> list[ServiceEvent]:
    return [event for event in heard if event.type == kind]


def assert_public(event: ServiceEvent, *secrets: str) -> None:
    text = json.dumps(event.data)
    for secret in secrets:
        assert secret not in text
    assert "password" not in text


async def test_backups_and_restores_that_end_are_announced(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("ev_jobs")
    create_filled(pg_server, source)
    async with running_app(settings_factory()) as (app, client):
        heard = collect(app)
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed"
        await wait_until(lambda: of_type(heard, "backup.completed"))
        (completed,) = of_type(heard, "backup.completed")
        assert completed.user_id == alice.user["id"]
        assert completed.data["backup"]["id"] == backup["id"]
        assert completed.data["backup"]["status"] == "completed"
        assert completed.data["backup"]["checksum"] == backup["checksum"]
        assert completed.data["database"] == {
            "id": database["id"],
            "name": database["name"],
            "type": "postgresql",
        }
        assert_public(completed, pg_server.password)

        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        assert response.status_code == 202, response.text
        restore = await alice.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed", restore["error_msg"]
        await wait_until(lambda: of_type(heard, "restore.completed"))
        (restored,) = of_type(heard, "restore.completed")
        assert restored.data["restore"]["id"] == restore["id"]
        assert restored.data["database"]["id"] == database["id"]

        # A server that refuses the password: the failure is announced with its reason.
        wrong = await alice.add_database(
            pg_server, source, name="mauvais mot de passe", password="pas-le-bon-mot-de-passe"
        )
        failed = await alice.wait_backup((await alice.start_backup(wrong["id"]))["id"])
        assert failed["status"] == "failed"
        await wait_until(lambda: of_type(heard, "backup.failed"))
        (announced,) = of_type(heard, "backup.failed")
        assert announced.data["backup"]["error_msg"] == failed["error_msg"]
        assert_public(announced, "pas-le-bon-mot-de-passe", pg_server.password)
        assert len({event.id for event in heard}) == len(heard)
    pg_server.drop_database(source)


async def test_a_skipped_slot_is_announced(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("ev_skip")
    create_filled(pg_server, source)
    clock = TravelClock(datetime(2026, 6, 1, 12, 30, tzinfo=UTC))
    async with running_app(settings_factory(), clock=clock) as (app, client):
        heard = collect(app)
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        url = f"/api/databases/{database['id']}/schedule"
        response = await alice.put(url, json={"cron": "0 * * * *"})
        assert response.status_code == 200, response.text
        with table_locked(pg_server, source):
            manual = await alice.start_backup(database["id"])
            clock.travel_to(datetime(2026, 6, 1, 13, tzinfo=UTC))
            await clock.settled()
            await wait_until(lambda: of_type(heard, "schedule.skipped"))
        assert (await alice.wait_backup(manual["id"]))["status"] == "completed"
        (skipped,) = of_type(heard, "schedule.skipped")
        assert skipped.user_id == alice.user["id"]
        assert skipped.data["schedule"] == {
            "cron": "0 * * * *",
            "timezone": "UTC",
            "trigger": "schedule",
        }
        assert skipped.data["database"]["id"] == database["id"]
        assert "déjà en attente ou en cours" in skipped.data["reason"]
    pg_server.drop_database(source)


async def test_retention_deletions_are_announced(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("ev_ret")
    create_filled(pg_server, source)
    async with running_app(settings_factory(), clock=TravelClock()) as (app, client):
        heard = collect(app)
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        first = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        # Older than the next one by hours, as retention's calendar rules need.
        backups = Backup.__table__  # type: ignore[attr-defined]
        aged = datetime.now(UTC) - timedelta(hours=3)
        statement = update(backups).where(backups.c.id == first["id"]).values(created_at=aged)
        await metadata_sql(app, statement)
        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1})).status_code == 200
        second = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert second["status"] == "completed"
        await wait_until(lambda: of_type(heard, "retention.deleted"))
        (deleted,) = of_type(heard, "retention.deleted")
        assert deleted.user_id == alice.user["id"]
        assert deleted.data["backup"]["id"] == first["id"]
        assert deleted.data["database"]["id"] == database["id"]
        assert deleted.data["reason"]
        response = await alice.get(f"/api/backups/{first['id']}")
        assert response.status_code == 404
    pg_server.drop_database(source)


def test_a_failing_subscriber_does_not_silence_the_others() -> None:
    bus = EventBus()
    heard: list[str] = []

    def broken(event: ServiceEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(lambda event: heard.append(event.type))
    bus.publish(ServiceEvent("backup.completed", 1, {}))
    assert heard == ["backup.completed"]
