"""/health: the bare status for anyone; for admins the details, the scheduler's last pass
and the job queue included, every value in the same (English) vocabulary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from backup_api.config import Settings
from tests.support.apphelpers import Api, make_settings, pg_metadata_url, running_app, unique_name
from tests.support.clocks import TravelClock
from tests.support.locks import table_locked
from tests.support.sample_data import create_filled

LOOPS = 5  # the scheduler, the retention sweep, the copy retrier, the overdue watch, the notifier


async def health_of(api: Api) -> dict[str, Any]:
    response = await api.get("/health")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def jobs_reach(admin: Api, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + 30
    while (await health_of(admin))["jobs"] != expected:
        assert time.monotonic() < deadline, f"the queue never showed {expected}"
        await asyncio.sleep(0.05)


async def test_health_details_for_admins_only(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    source, other = unique_name("health"), unique_name("health")
    create_filled(pg_server, source)
    pg_server.create_database(other)
    clock = TravelClock(loops=LOOPS)
    async with running_app(settings_factory(), clock=clock) as (app, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        alice = await Api(client).signup()
        clock.travel(timedelta(hours=5, seconds=7))
        await clock.settled()
        for anonymous in (client.get("/health"), alice.get("/health")):
            response = await anonymous
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}

        body = await health_of(admin)
        assert body["status"] == "ok"
        assert body["database"] == "ok"
        assert body["storage"]["status"] == "ok"
        assert body["scheduler"] == {
            "status": "ok",
            "last_tick": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        assert body["jobs"] == {"running": 0, "queued": 0}

        # One of alice's backups held by a lock runs; her next one waits for her slot.
        held = await alice.add_database(pg_server, source)
        waiting = await alice.add_database(pg_server, other)
        with table_locked(pg_server, source):
            first = await alice.start_backup(held["id"])
            second = await alice.start_backup(waiting["id"])
            await jobs_reach(admin, {"running": 1, "queued": 1})
        for backup in (first, second):
            assert (await alice.wait_backup(backup["id"]))["status"] == "completed"
        await jobs_reach(admin, {"running": 0, "queued": 0})

        # A scheduler that stopped making passes is late: the service is degraded.
        await app.state.backup_api.scheduler.stop()
        tick = (await health_of(admin))["scheduler"]["last_tick"]
        clock.travel(timedelta(minutes=3))
        body = await health_of(admin)
        assert body["scheduler"] == {"status": "late", "last_tick": tick}
        assert body["status"] == "degraded"
        # Anyone else still learns only that the service answers.
        assert (await client.get("/health")).json() == {"status": "ok"}


async def test_admin_details_when_the_metadata_database_is_gone(
    pg_server: Any, tmp_path: Path
) -> None:
    name = unique_name("meta")
    pg_server.create_database(name)
    settings = make_settings(tmp_path, database_url=pg_metadata_url(pg_server, name))
    async with running_app(settings) as (_, client):
        # Known to the principal cache: the admin stays recognised for its few seconds.
        admin = await Api(client).signup("root@example.com", role="admin")
        assert (await health_of(admin))["database"] == "ok"
        pg_server.drop_database(name)
        response = await admin.get("/health")
        anonymous = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("degraded", "unavailable")
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "degraded"})
