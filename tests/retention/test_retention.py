"""Retention through the API, with real backups (real pg_dump) and a clock the test moves."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update

from backup_api.config import Settings
from backup_api.main import create_app
from backup_api.models import Backup, RetentionPolicy
from backup_api.retention.sweep import RetentionSweeper
from backup_api.services.backups import open_download
from tests.support.apphelpers import Api, metadata_sql, unique_name
from tests.support.clocks import TravelClock
from tests.support.locks import table_locked, wait_until
from tests.support.sample_data import create_filled

POLICY = {
    "keep_last": 3,
    "keep_hourly": 0,
    "keep_daily": 7,
    "keep_weekly": 4,
    "keep_monthly": 12,
    "keep_yearly": 3,
    "max_age_days": None,
}


POLICIES = RetentionPolicy.__table__  # type: ignore[attr-defined]


@asynccontextmanager
async def app_with_clock(
    settings: Settings, clock: TravelClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4242))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


def sweeper(app: FastAPI) -> RetentionSweeper:
    result: RetentionSweeper = app.state.backup_api.retention
    return result


async def set_created_at(app: FastAPI, backup_id: int, when: datetime) -> None:
    """Age a real backup (its file stays): the metadata is all retention reads."""
    table = Backup.__table__  # type: ignore[attr-defined]
    await metadata_sql(app, update(table).where(table.c.id == backup_id).values(created_at=when))


async def backups_of(api: Api, database_id: int) -> dict[int, dict[str, Any]]:
    response = await api.get(f"/api/backups/database/{database_id}")
    assert response.status_code == 200, response.text
    return {b["id"]: b for b in response.json()["backups"]}


async def completed_backups(app: FastAPI, api: Api, database_id: int, count: int) -> list[Any]:
    """``count`` real backups, once the sweep each one's completion asks for is done (so
    that none runs later, under a policy the test sets meanwhile)."""
    before = sweeper(app).requested_sweeps
    backups = []
    for _ in range(count):
        backup = await api.wait_backup((await api.start_backup(database_id))["id"])
        assert backup["status"] == "completed", backup
        backups.append(backup)
    await wait_until(lambda: sweeper(app).requested_sweeps >= before + count)
    return backups


async def wait_for(predicate: Callable[[], Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _file(settings: Settings, backup: dict[str, Any]) -> Path:
    return settings.backup_root / backup["db_type"] / backup["filename"]


# --------------------------------------------------------------------------- CRUD


async def test_policy_crud_and_validation(app: FastAPI, alice: Api, pg_server: Any) -> None:
    database = await alice.add_database(pg_server, unique_name("ret"))
    url = f"/api/databases/{database['id']}/retention"

    response = await alice.get(url)
    assert response.status_code == 404
    assert response.json() == {"error": "Aucune politique de rétention pour cette base de données"}
    assert (await alice.delete(url)).status_code == 404

    response = await alice.put(url, json=POLICY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Politique de rétention enregistrée"
    assert {k: body["retention"][k] for k in POLICY} == POLICY
    assert body["retention"]["database_id"] == database["id"]
    response = await alice.get(url)
    assert response.status_code == 200
    assert {k: response.json()["retention"][k] for k in POLICY} == POLICY

    # A PUT replaces the whole policy: omitted counts are 0.
    response = await alice.put(url, json={"keep_daily": 2, "max_age_days": 90})
    assert response.status_code == 200, response.text
    stored = response.json()["retention"]
    assert stored["keep_daily"] == 2
    assert stored["keep_last"] == 0
    assert stored["max_age_days"] == 90

    bad = [
        ({"keep_daily": -1}, "Données invalides: keep_daily: valeur trop petite"),
        ({"keep_last": 10_001}, "Données invalides: keep_last: valeur trop grande"),
        ({"keep_last": True}, "Données invalides: keep_last: entier positif ou nul attendu"),
        ({"keep_weekly": 1.5}, "Données invalides: keep_weekly: entier attendu"),
        ({"keep_hourly": "x"}, "Données invalides: keep_hourly: entier attendu"),
        ({"max_age_days": 0}, "Données invalides: max_age_days: valeur trop petite"),
        (
            {"keep_last": 1, "keep_forever": 1},
            "Données invalides: keep_forever: champ non autorisé",
        ),
    ]
    for payload, message in bad:
        response = await alice.put(url, json=payload)
        assert response.status_code == 400, (payload, response.text)
        assert response.json() == {"error": message}, payload
        # Bad input loses nothing.
        assert (await alice.get(url)).json()["retention"] == stored

    # A policy tried in a preview is checked the same way.
    for params, message in [
        ({"keep_daily": -1}, "Données invalides: keep_daily: valeur trop petite"),
        ({"max_age_days": "jamais"}, "Données invalides: max_age_days: entier attendu"),
        ({"keep_all": 1}, "Données invalides: keep_all: champ non autorisé"),
    ]:
        response = await alice.get(f"{url}/preview", params=params)
        assert response.status_code == 400, response.text
        assert response.json() == {"error": message}
    # A policy without any rule deletes nothing (restic's forget without a policy).
    response = await alice.post(f"{url}/preview", json={"keep_last": 0, "keep_daily": 0})
    assert response.status_code == 200, response.text
    assert response.json() == {"keep": [], "delete": []}

    response = await alice.delete(url)
    assert response.status_code == 200
    assert response.json() == {"message": "Politique de rétention supprimée"}
    assert (await alice.get(url)).status_code == 404
    assert (await alice.get("/api/databases/999999/retention")).status_code == 404
    # A policy goes with its database.
    assert (await alice.put(url, json=POLICY)).status_code == 200
    assert (await alice.delete(f"/api/databases/{database['id']}")).status_code == 200
    assert await metadata_sql(app, select(func.count()).select_from(POLICIES)) == [(0,)]


# --------------------------------------------------------------------------- sweeps


async def test_preview_is_what_the_sweep_does(pg_server: Any, settings_factory: Any) -> None:
    source = unique_name("ret")
    create_filled(pg_server, source)
    settings = settings_factory()
    # Noon, so that the day buckets below do not depend on when the test runs; every
    # backup's time is set relative to it.
    clock = TravelClock(datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0))
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        backups = await completed_backups(app, alice, database["id"], 6)
        # Newest first: 2 hours, 1 day, 1 day and 1 hour, 3 days, 20 days, 400 days old.
        ages = [timedelta(hours=2), timedelta(days=1), timedelta(days=1, hours=1)]
        ages += [timedelta(days=3), timedelta(days=20), timedelta(days=400)]
        for backup, age in zip(backups[::-1], ages, strict=True):
            await set_created_at(app, backup["id"], clock.now() - age)
        ids = [b["id"] for b in backups[::-1]]  # newest first

        url = f"/api/databases/{database['id']}/retention"
        # No policy: everything stays.
        response = await alice.get(f"{url}/preview")
        assert response.status_code == 200, response.text
        assert response.json()["delete"] == []
        assert [k["reasons"] for k in response.json()["keep"]][1:] == [["no_policy"]] * 5

        policy = {"keep_last": 1, "keep_daily": 2, "max_age_days": 300}
        # Tried before saving, in the query and in a body: the same answer.
        tried = await alice.get(
            f"{url}/preview", params={"keep_last": 1, "keep_daily": 2, "max_age_days": 300}
        )
        posted = await alice.post(f"{url}/preview", json=policy)
        assert tried.status_code == posted.status_code == 200, (tried.text, posted.text)
        assert tried.json() == posted.json()
        assert (await alice.put(url, json=policy)).status_code == 200
        preview = (await alice.get(f"{url}/preview")).json()
        assert preview == posted.json()

        reasons = {k["backup_id"]: k["reasons"] for k in preview["keep"]}
        assert reasons == {ids[0]: ["newest", "last", "daily"], ids[1]: ["daily"]}
        doomed = {d["backup_id"]: d["reason"] for d in preview["delete"]}
        assert doomed == {ids[2]: "policy", ids[3]: "policy", ids[4]: "policy", ids[5]: "max_age"}

        outcome = await sweeper(app).sweep(database["id"])
        assert sorted(outcome.deleted) == sorted(doomed)
        assert outcome.skipped == []
        assert set(await backups_of(alice, database["id"])) == set(reasons)
        for backup in backups:
            assert _file(settings, backup).exists() == (backup["id"] in reasons)
        # Swept: the next preview has nothing left to delete.
        assert (await alice.get(f"{url}/preview")).json()["delete"] == []
    pg_server.drop_database(source)


async def test_days_follow_the_schedule_zone(pg_server: Any, settings_factory: Any) -> None:
    """The zone a database's schedule is saved with (PUT .../schedule) is the one its
    retention days are cut in: the same backups keep or lose their day with it."""
    source = unique_name("ret")
    create_filled(pg_server, source)
    clock = TravelClock(datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0))
    async with app_with_clock(settings_factory(), clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        newest, evening, afternoon = (await completed_backups(app, alice, database["id"], 3))[::-1]
        # 10:00, and the day before 20:00 and 13:00 UTC; in Tokyo (UTC+9) 19:00 and 05:00
        # the same day, and 22:00 the day before.
        await set_created_at(app, newest["id"], clock.now() - timedelta(hours=2))
        await set_created_at(app, evening["id"], clock.now() - timedelta(hours=16))
        await set_created_at(app, afternoon["id"], clock.now() - timedelta(hours=23))
        url = f"/api/databases/{database['id']}"
        assert (await alice.put(f"{url}/retention", json={"keep_daily": 2})).status_code == 200

        async def plan() -> tuple[set[int], set[int]]:
            response = await alice.get(f"{url}/retention/preview")
            assert response.status_code == 200, response.text
            body = response.json()
            return {k["backup_id"] for k in body["keep"]}, {d["backup_id"] for d in body["delete"]}

        # No schedule: UTC days, the day before keeps its evening backup.
        assert await plan() == ({newest["id"], evening["id"]}, {afternoon["id"]})
        response = await alice.put(
            f"{url}/schedule", json={"cron": "0 3 * * *", "timezone": "Asia/Tokyo"}
        )
        assert response.status_code == 200, response.text
        # Tokyo days: the evening backup shares the newest one's day.
        tokyo = ({newest["id"], afternoon["id"]}, {evening["id"]})
        assert await plan() == tokyo
        # Without the schedule, UTC again; with it, Tokyo, and the sweep does as planned.
        assert (await alice.delete(f"{url}/schedule")).status_code == 200
        assert await plan() == ({newest["id"], evening["id"]}, {afternoon["id"]})
        response = await alice.put(
            f"{url}/schedule", json={"cron": "@daily", "timezone": "Asia/Tokyo"}
        )
        assert response.status_code == 200, response.text
        assert await plan() == tokyo
        outcome = await sweeper(app).sweep(database["id"])
        assert outcome.deleted == [evening["id"]]
        assert set(await backups_of(alice, database["id"])) == tokyo[0]
    pg_server.drop_database(source)


async def test_sweep_follows_each_completed_backup(pg_server: Any, settings_factory: Any) -> None:
    source = unique_name("ret")
    create_filled(pg_server, source)
    settings = settings_factory()
    async with app_with_clock(settings, TravelClock()) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        (first,) = await completed_backups(app, alice, database["id"], 1)
        await set_created_at(app, first["id"], datetime.now(UTC) - timedelta(hours=3))
        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1})).status_code == 200
        # Saving the policy deletes nothing by itself.
        assert first["id"] in await backups_of(alice, database["id"])

        (second,) = await completed_backups(app, alice, database["id"], 1)

        async def first_gone() -> bool:
            return first["id"] not in await backups_of(alice, database["id"])

        await wait_for(first_gone)
        assert set(await backups_of(alice, database["id"])) == {second["id"]}
        assert not _file(settings, first).exists()
        assert _file(settings, second).exists()
    pg_server.drop_database(source)


async def test_periodic_sweep_runs_on_the_clock(pg_server: Any, settings_factory: Any) -> None:
    source = unique_name("ret")
    create_filled(pg_server, source)
    settings = settings_factory()
    clock = TravelClock()
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        old, new = await completed_backups(app, alice, database["id"], 2)
        await set_created_at(app, old["id"], clock.now() - timedelta(hours=3))
        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1})).status_code == 200
        # The clock has not moved: no sweep is due.
        await clock.settled()
        assert old["id"] in await backups_of(alice, database["id"])

        clock.travel(timedelta(hours=1))

        async def old_gone() -> bool:
            return old["id"] not in await backups_of(alice, database["id"])

        await wait_for(old_gone)
        assert set(await backups_of(alice, database["id"])) == {new["id"]}
    pg_server.drop_database(source)


async def test_missing_file_counts_as_deleted_and_an_error_stops_nothing(
    pg_server: Any, settings_factory: Any, caplog: Any
) -> None:
    source = unique_name("ret")
    create_filled(pg_server, source)
    settings = settings_factory()
    clock = TravelClock()
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        oldest, stuck, newest = await completed_backups(app, alice, database["id"], 3)
        await set_created_at(app, oldest["id"], clock.now() - timedelta(days=3))
        await set_created_at(app, stuck["id"], clock.now() - timedelta(days=2))
        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1})).status_code == 200
        # The oldest one's file is gone; the other cannot be removed (a directory took
        # its place), and it is deleted first (newest first).
        _file(settings, oldest).unlink()
        _file(settings, stuck).unlink()
        _file(settings, stuck).mkdir()
        (_file(settings, stuck) / "keep").write_text("x")

        caplog.set_level("INFO", logger="backup_api.retention")
        outcome = await sweeper(app).sweep(database["id"])
        assert outcome.deleted == [oldest["id"]]
        assert outcome.skipped == [stuck["id"]]
        assert set(await backups_of(alice, database["id"])) == {stuck["id"], newest["id"]}
        logged = [r.getMessage() for r in caplog.records if r.name == "backup_api.retention"]
        assert f"retention: could not delete backup {stuck['id']}" in logged
        assert (
            f"retention: backup {oldest['id']} of database {database['id']} deleted (policy)"
            in logged
        )

        # Next sweep, the obstacle gone: the record goes too.
        shutil.rmtree(_file(settings, stuck))
        outcome = await sweeper(app).sweep(database["id"])
        assert outcome.deleted == [stuck["id"]]
        assert set(await backups_of(alice, database["id"])) == {newest["id"]}
    pg_server.drop_database(source)


async def test_failed_records_expire(pg_server: Any, settings_factory: Any) -> None:
    source = unique_name("ret")
    create_filled(pg_server, source)
    settings = settings_factory()
    clock = TravelClock()
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        (good,) = await completed_backups(app, alice, database["id"], 1)
        pg_server.drop_database(source)
        failed = [await alice.wait_backup((await alice.start_backup(database["id"]))["id"])]
        failed.append(await alice.wait_backup((await alice.start_backup(database["id"]))["id"]))
        assert [b["status"] for b in failed] == ["failed", "failed"]
        await set_created_at(app, good["id"], clock.now() - timedelta(days=90))
        await set_created_at(app, failed[0]["id"], clock.now() - timedelta(days=31))
        await set_created_at(app, failed[1]["id"], clock.now() - timedelta(days=29))

        # No policy: only the expired failure goes; the old success stays whatever happens.
        preview = (await alice.get(f"/api/databases/{database['id']}/retention/preview")).json()
        assert [(d["backup_id"], d["reason"]) for d in preview["delete"]] == [
            (failed[0]["id"], "failed")
        ]
        await sweeper(app).sweep_all()
        assert set(await backups_of(alice, database["id"])) == {good["id"], failed[1]["id"]}


async def test_pinned_backups_stay(pg_server: Any, settings_factory: Any) -> None:
    source = unique_name("ret")
    create_filled(pg_server, source)
    settings = settings_factory()
    clock = TravelClock()
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        old, new = await completed_backups(app, alice, database["id"], 2)
        assert old["pinned"] is False
        await set_created_at(app, old["id"], clock.now() - timedelta(days=10))

        response = await alice.put(f"/api/backups/{old['id']}", json={"pinned": True})
        assert response.status_code == 200, response.text
        assert response.json()["message"] == "Sauvegarde épinglée"
        assert response.json()["backup"]["pinned"] is True
        assert (await alice.get(f"/api/backups/{old['id']}")).json()["backup"]["pinned"] is True
        for payload, message in [
            ({}, "Données invalides: pinned: champ requis"),
            ({"pinned": "peut-être"}, "Données invalides: pinned: booléen attendu"),
            ({"pinned": True, "size": 0}, "Données invalides: size: champ non autorisé"),
        ]:
            response = await alice.put(f"/api/backups/{old['id']}", json=payload)
            assert response.status_code == 400, response.text
            assert response.json() == {"error": message}
        assert (await alice.put("/api/backups/999999", json={"pinned": True})).status_code == 404

        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1, "max_age_days": 1})).status_code == 200
        preview = (await alice.get(f"{url}/preview")).json()
        assert preview["delete"] == []
        assert {k["backup_id"]: k["reasons"] for k in preview["keep"]} == {
            new["id"]: ["newest", "young", "last"],
            old["id"]: ["pinned"],
        }
        assert (await sweeper(app).sweep(database["id"])).deleted == []

        # Unpinned, it is the policy's again.
        response = await alice.put(f"/api/backups/{old['id']}", json={"pinned": False})
        assert response.json()["backup"]["pinned"] is False
        assert (await sweeper(app).sweep(database["id"])).deleted == [old["id"]]
        assert not _file(settings, old).exists()
    pg_server.drop_database(source)


async def test_a_backup_being_restored_waits_for_the_next_sweep(
    pg_server: Any, settings_factory: Any
) -> None:
    source = unique_name("ret")
    target = unique_name("ret_target")
    create_filled(pg_server, source)
    create_filled(pg_server, target)
    settings = settings_factory()
    clock = TravelClock()
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        target_database = await alice.add_database(pg_server, target)
        old, _ = await completed_backups(app, alice, database["id"], 2)
        await set_created_at(app, old["id"], clock.now() - timedelta(days=10))
        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1})).status_code == 200
        with table_locked(pg_server, target):
            # The restore of the old backup blocks on the target's lock (its psql drops
            # the locked table first): it stays pending while it runs.
            response = await alice.post(
                f"/api/backups/{old['id']}/restore", json={"database_id": target_database["id"]}
            )
            assert response.status_code == 202, response.text
            restore = response.json()["restore"]
            # Refused by hand, for the same reason.
            assert (await alice.delete(f"/api/backups/{old['id']}")).status_code == 409
            outcome = await sweeper(app).sweep(database["id"])
            assert outcome.deleted == []
            assert outcome.skipped == [old["id"]]
            assert old["id"] in await backups_of(alice, database["id"])
        assert (await alice.wait_restore(restore["id"]))["status"] == "completed"
        assert (await sweeper(app).sweep(database["id"])).deleted == [old["id"]]
        assert not _file(settings, old).exists()
    pg_server.drop_database(source)
    pg_server.drop_database(target)


async def test_a_backup_being_downloaded_waits_for_the_next_sweep(
    pg_server: Any, settings_factory: Any
) -> None:
    source = unique_name("ret")
    create_filled(pg_server, source)
    settings = settings_factory()
    clock = TravelClock()
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        old, _ = await completed_backups(app, alice, database["id"], 2)
        await set_created_at(app, old["id"], clock.now() - timedelta(days=10))
        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1})).status_code == 200
        state = app.state.backup_api
        table = Backup.__table__  # type: ignore[attr-defined]
        [record] = await metadata_sql(app, select(table).where(table.c.id == old["id"]))
        # The download route's own stream, held after its first chunk.
        download = await open_download(
            metadata=state.metadata,
            copy_store=state.copy_store,
            backup=record,
            downloads=sweeper(app).downloads,
        )
        first = await anext(download.chunks)
        assert first.startswith(b"PK")
        outcome = await sweeper(app).sweep(database["id"])
        assert outcome.skipped == [old["id"]]
        assert _file(settings, old).exists()
        rest = b"".join([chunk async for chunk in download.chunks])
        assert len(first + rest) == old["size"]
        assert (await sweeper(app).sweep(database["id"])).deleted == [old["id"]]
    pg_server.drop_database(source)
