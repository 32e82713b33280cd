"""Schedules: the API, and the scheduler driven by a clock the tests move (real backups,
real tools, the suite's PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from backup_api.config import Settings
from tests.support.apphelpers import Api, running_app, unique_name
from tests.support.clocks import TravelClock
from tests.support.locks import table_locked
from tests.support.sample_data import create_filled

T = TypeVar("T")

NO_SCHEDULE = {"error": "Aucune planification pour cette base de données"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def url(database: dict[str, Any]) -> str:
    return f"/api/databases/{database['id']}/schedule"


async def schedule_of(api: Api, database: dict[str, Any]) -> dict[str, Any]:
    response = await api.get(url(database))
    assert response.status_code == 200, response.text
    schedule: dict[str, Any] = response.json()["schedule"]
    return schedule


async def backups_of(api: Api, database: dict[str, Any]) -> list[dict[str, Any]]:
    response = await api.get(f"/api/backups/database/{database['id']}")
    assert response.status_code == 200, response.text
    backups: list[dict[str, Any]] = response.json()["backups"]
    return backups


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 60) -> T:
    """``probe()``'s first answer that is not None, polled until a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.05)


async def put_schedule(api: Api, database: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await api.put(url(database), json=body)
    assert response.status_code == 200, response.text
    schedule: dict[str, Any] = response.json()["schedule"]
    return schedule


async def started_by_schedule(
    api: Api, database: dict[str, Any], previous: int | None = None
) -> dict[str, Any]:
    """The backup the schedule started after ``previous``, once it has ended."""

    async def probe() -> int | None:
        last = (await schedule_of(api, database))["last_backup_id"]
        return last if last is not None and last != previous else None

    return await api.wait_backup(await eventually(probe))


async def test_schedule_api(settings_factory: Callable[..., Settings], pg_server: Any) -> None:
    source = unique_name("sched_api")
    pg_server.create_database(source)
    clock = TravelClock(utc(2026, 1, 15, 12))
    async with running_app(settings_factory(), clock=clock) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        response = await alice.get(url(database))
        assert response.status_code == 404
        assert response.json() == NO_SCHEDULE

        response = await alice.put(
            url(database), json={"cron": "0 3 * * *", "timezone": "Europe/Paris", "enabled": True}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "message": "Planification créée avec succès",
            "schedule": {
                "cron": "0 3 * * *",
                "timezone": "Europe/Paris",
                "enabled": True,
                "next_run_at": "2026-01-16T02:00:00Z",  # 03:00 in Paris, in winter
                "last_run_at": None,
                "last_backup_id": None,
                "skipped_runs": 0,
                "next_retry_at": None,
                "heartbeat_url": None,
            },
        }
        assert await schedule_of(alice, database) == response.json()["schedule"]

        # The zone defaults to UTC; shortcuts are kept as written.
        response = await alice.put(url(database), json={"cron": "@daily"})
        assert response.status_code == 200, response.text
        assert response.json()["message"] == "Planification mise à jour"
        schedule = response.json()["schedule"]
        assert (schedule["cron"], schedule["timezone"]) == ("@daily", "UTC")
        assert schedule["next_run_at"] == "2026-01-16T00:00:00Z"

        # Bad input is a 400 naming the field, and changes nothing.
        for body, message in [
            (
                {"cron": "0 3 * *"},
                "Données invalides: cron: cinq champs attendus "
                "(minute heure jour mois jour-de-semaine)",
            ),
            (
                {"cron": "0 3 * * *", "timezone": "Europe/Pariss"},
                "Données invalides: timezone: fuseau horaire IANA inconnu "
                "(par exemple Europe/Paris, UTC)",
            ),
            (
                {"cron": "0 25 * * *"},
                "Données invalides: cron: expression cron invalide (heure invalide)",
            ),
            (
                {"cron": "@yearly"},
                "Données invalides: cron: raccourci inconnu (acceptés: "
                "@hourly, @daily, @weekly, @monthly)",
            ),
            ({}, "Données invalides: cron: champ requis"),
            ({"cron": "0 3 * * *", "hour": 3}, "Données invalides: hour: champ non autorisé"),
            (
                {"cron": "0 3 * * *", "enabled": "sometimes"},
                "Données invalides: enabled: booléen attendu",
            ),
        ]:
            response = await alice.put(url(database), json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json() == {"error": message}
        assert await schedule_of(alice, database) == schedule

        # Disabled: no next run; enabled again: counted from now.
        schedule = await put_schedule(alice, database, cron="@daily", enabled=False)
        assert (schedule["enabled"], schedule["next_run_at"]) == (False, None)
        clock.travel_to(utc(2026, 1, 20, 5))
        await clock.settled()
        assert await backups_of(alice, database) == []
        schedule = await put_schedule(alice, database, cron="@daily")
        assert schedule["next_run_at"] == "2026-01-21T00:00:00Z"

        response = await alice.delete(url(database))
        assert response.status_code == 200
        assert response.json() == {"message": "Planification supprimée avec succès"}
        for method in ("GET", "DELETE"):
            response = await alice.request(method, url(database))
            assert (response.status_code, response.json()) == (404, NO_SCHEDULE)

        # A database's schedule goes with it.
        await put_schedule(alice, database, cron="@hourly")
        assert (await alice.delete(f"/api/databases/{database['id']}")).status_code == 200
        response = await alice.get(url(database))
        assert response.status_code == 404
    pg_server.drop_database(source)


async def test_a_one_minute_schedule_backs_up_for_real(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("sched_real")
    create_filled(pg_server, source)
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    clock = TravelClock(start)
    async with running_app(settings_factory(), clock=clock) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        manual = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert (manual["status"], manual["trigger"]) == ("completed", "manual")

        schedule = await put_schedule(alice, database, cron="* * * * *")
        assert schedule["next_run_at"] == stamp(start + timedelta(minutes=1))
        ids = []
        for minute in (1, 2):
            clock.travel_to(start + timedelta(minutes=minute))
            await clock.settled()
            backup = await started_by_schedule(alice, database, ids[-1] if ids else None)
            assert backup["status"] == "completed", backup["error_msg"]
            assert backup["trigger"] == "schedule"
            assert backup["size"] > 0
            response = await alice.post(f"/api/backups/{backup['id']}/verify")
            assert response.json()["verification"]["valid"] is True, response.text
            schedule = await schedule_of(alice, database)
            assert schedule["last_run_at"] == stamp(start + timedelta(minutes=minute))
            assert schedule["next_run_at"] == stamp(start + timedelta(minutes=minute + 1))
            ids.append(backup["id"])
        triggers = [(b["id"], b["trigger"]) for b in await backups_of(alice, database)]
        assert triggers == [(ids[1], "schedule"), (ids[0], "schedule"), (manual["id"], "manual")]
    pg_server.drop_database(source)


async def test_a_nightly_schedule_follows_paris_through_the_spring_change(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("sched_dst")
    create_filled(pg_server, source)
    clock = TravelClock(utc(2026, 3, 27, 12))
    async with running_app(settings_factory(), clock=clock) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        schedule = await put_schedule(alice, database, cron="30 2 * * *", timezone="Europe/Paris")
        previous = None
        # 02:30 CET; 29 March has no 02:30, it runs once at 03:00 CEST; then 02:30 CEST.
        for expected in ("2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"):
            assert schedule["next_run_at"] == expected
            clock.travel_to(datetime.fromisoformat(expected))
            await clock.settled()
            backup = await started_by_schedule(alice, database, previous)
            assert backup["status"] == "completed", backup["error_msg"]
            previous = backup["id"]
            schedule = await schedule_of(alice, database)
        assert len(await backups_of(alice, database)) == 3
    pg_server.drop_database(source)


async def test_slots_missed_while_stopped_give_one_catch_up_run(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("sched_catchup")
    create_filled(pg_server, source)
    settings = settings_factory()
    email = f"{unique_name('catchup')}@example.com"
    async with running_app(settings, clock=TravelClock(utc(2026, 5, 1, 12))) as (_, client):
        alice = await Api(client).signup(email)
        database = await alice.add_database(pg_server, source)
        schedule = await put_schedule(alice, database, cron="0 3 * * *")
        assert schedule["next_run_at"] == "2026-05-02T03:00:00Z"

    # Down for four nights (the 2nd to the 5th at 03:00), then started again.
    clock = TravelClock(utc(2026, 5, 5, 12))
    async with running_app(settings, clock=clock) as (_, client):
        alice = await Api(client).login(email)
        await clock.settled()
        backup = await started_by_schedule(alice, database)
        assert (backup["status"], backup["trigger"]) == ("completed", "schedule")
        schedule = await schedule_of(alice, database)
        assert schedule["last_run_at"] == "2026-05-05T12:00:00Z"
        assert schedule["next_run_at"] == "2026-05-06T03:00:00Z"
        clock.travel(timedelta(hours=1))
        await clock.settled()
        assert [b["id"] for b in await backups_of(alice, database)] == [backup["id"]]
    pg_server.drop_database(source)


async def test_a_slot_finding_a_backup_pending_is_skipped_and_counted(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("sched_overlap")
    create_filled(pg_server, source)
    clock = TravelClock(utc(2026, 6, 1, 12, 30))
    async with running_app(settings_factory(), clock=clock) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        await put_schedule(alice, database, cron="0 * * * *")
        with table_locked(pg_server, source):
            # The dump waits for the lock: the backup stays pending (running).
            manual = await alice.start_backup(database["id"])
            clock.travel_to(utc(2026, 6, 1, 13))
            await clock.settled()
            schedule = await schedule_of(alice, database)
            assert schedule["skipped_runs"] == 1
            assert schedule["last_backup_id"] is None
            assert schedule["next_run_at"] == "2026-06-01T14:00:00Z"
            assert [b["id"] for b in await backups_of(alice, database)] == [manual["id"]]
        assert (await alice.wait_backup(manual["id"]))["status"] == "completed"

        clock.travel_to(utc(2026, 6, 1, 14))
        await clock.settled()
        backup = await started_by_schedule(alice, database)
        assert (backup["status"], backup["trigger"]) == ("completed", "schedule")
        schedule = await schedule_of(alice, database)
        assert (schedule["skipped_runs"], schedule["last_backup_id"]) == (1, backup["id"])
    pg_server.drop_database(source)


async def test_a_slot_the_accounts_limits_refuse_is_skipped_and_counted(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("sched_quota")
    create_filled(pg_server, source)
    clock = TravelClock(utc(2026, 6, 1, 12, 30))
    # One byte of quota: once a backup is stored, the next one is refused.
    async with running_app(settings_factory(user_quota_bytes=1), clock=clock) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        await put_schedule(alice, database, cron="0 * * * *")
        clock.travel_to(utc(2026, 6, 1, 13))
        await clock.settled()
        first = await started_by_schedule(alice, database)
        assert first["status"] == "completed", first["error_msg"]
        response = await alice.post(f"/api/backups/database/{database['id']}")
        assert response.status_code == 507, response.text

        clock.travel_to(utc(2026, 6, 1, 14))
        await clock.settled()
        schedule = await schedule_of(alice, database)
        assert (schedule["skipped_runs"], schedule["last_backup_id"]) == (1, first["id"])
        assert schedule["next_run_at"] == "2026-06-01T15:00:00Z"
        assert [b["id"] for b in await backups_of(alice, database)] == [first["id"]]
    pg_server.drop_database(source)


async def _wait_retry_planned(api: Api, database: dict[str, Any], at: str) -> None:
    async def probe() -> bool | None:
        return (await schedule_of(api, database))["next_retry_at"] == at or None

    await eventually(probe)


async def test_a_failed_scheduled_backup_is_retried_and_survives_a_restart(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source = unique_name("sched_retry")
    pg_server.create_database(source)
    settings = settings_factory(schedule_retries=2, schedule_retry_delay_seconds=600)
    email = f"{unique_name('retry')}@example.com"
    clock = TravelClock(utc(2026, 5, 1, 12))
    async with running_app(settings, clock=clock) as (_, client):
        alice = await Api(client).signup(email)
        database = await alice.add_database(pg_server, source)
        await put_schedule(alice, database, cron="0 3 * * *")
        # The database is gone from its server: every backup of it fails.
        pg_server.drop_database(source)
        clock.travel_to(utc(2026, 5, 2, 3))
        await clock.settled()
        first = await started_by_schedule(alice, database)
        assert (first["status"], first["trigger"]) == ("failed", "schedule")
        assert first["error_msg"] == "base de données introuvable sur le serveur"
        await _wait_retry_planned(alice, database, "2026-05-02T03:10:00Z")

    # The planned retry is in the metadata database: a new process runs it.
    clock = TravelClock(utc(2026, 5, 2, 3, 10))
    async with running_app(settings, clock=clock) as (_, client):
        alice = await Api(client).login(email)
        await clock.settled()
        retry = await started_by_schedule(alice, database, first["id"])
        assert (retry["status"], retry["trigger"]) == ("failed", "retry")
        await _wait_retry_planned(alice, database, "2026-05-02T03:20:00Z")
        clock.travel_to(utc(2026, 5, 2, 3, 20))
        await clock.settled()
        last = await started_by_schedule(alice, database, retry["id"])
        assert (last["status"], last["trigger"]) == ("failed", "retry")
        # Two retries, then no more.
        for _ in range(3):
            clock.travel(timedelta(minutes=10))
            await clock.settled()
        schedule = await schedule_of(alice, database)
        assert schedule["next_retry_at"] is None
        triggers = [b["trigger"] for b in await backups_of(alice, database)]
        assert triggers == ["retry", "retry", "schedule"]

        # The next slot fails too; its first retry completes, and that ends the retries.
        clock.travel_to(utc(2026, 5, 3, 3))
        await clock.settled()
        failed = await started_by_schedule(alice, database, last["id"])
        assert (failed["status"], failed["trigger"]) == ("failed", "schedule")
        await _wait_retry_planned(alice, database, "2026-05-03T03:10:00Z")
        pg_server.create_database(source)
        clock.travel_to(utc(2026, 5, 3, 3, 10))
        await clock.settled()
        good = await started_by_schedule(alice, database, failed["id"])
        assert (good["status"], good["trigger"]) == ("completed", "retry")
        for _ in range(3):
            clock.travel(timedelta(minutes=10))
            await clock.settled()
        assert (await schedule_of(alice, database))["next_retry_at"] is None
        triggers = [b["trigger"] for b in await backups_of(alice, database)]
        assert triggers == ["retry", "schedule", "retry", "retry", "schedule"]
    pg_server.drop_database(source)
