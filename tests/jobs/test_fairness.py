"""One user cannot hold every job slot: a user runs at most ``max(1, slots - 1)`` jobs at
once (a running job cannot be taken back, so the rule holds when jobs start), and restores
count against the same per-user cap of pending jobs as backups."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from backup_api.config import Settings
from backup_api.jobs.queue import InProcessQueue, Job, JobKind
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled

CAP_MESSAGE = (
    "Trop de sauvegardes et restaurations en cours pour cet utilisateur, réessayez plus tard"
)


def test_the_per_user_share_defaults_to_all_slots_but_one() -> None:
    assert Settings(max_concurrent_jobs=1).running_jobs_per_user == 1
    assert Settings(max_concurrent_jobs=2).running_jobs_per_user == 1
    assert Settings(max_concurrent_jobs=8).running_jobs_per_user == 7
    assert Settings(max_concurrent_jobs=8, max_running_jobs_per_user=3).running_jobs_per_user == 3


async def test_queue_keeps_a_user_to_their_share_and_lets_others_overtake() -> None:
    started: list[tuple[JobKind, int]] = []
    release: dict[tuple[JobKind, int], asyncio.Event] = {}

    async def body(job: Job) -> None:
        started.append(job.key)
        await release.setdefault(job.key, asyncio.Event()).wait()

    queue = InProcessQueue(3, body, max_per_user=2)
    # User 1 queues four jobs (a restore among them), then user 2 one.
    queue.submit(JobKind.BACKUP, 1, 10, 1)
    queue.submit(JobKind.BACKUP, 2, 11, 1)
    queue.submit(JobKind.RESTORE, 3, 12, 1)
    queue.submit(JobKind.BACKUP, 4, 13, 1)
    queue.submit(JobKind.BACKUP, 5, 14, 2)
    await asyncio.sleep(0)
    assert started == [(JobKind.BACKUP, 1), (JobKind.BACKUP, 2), (JobKind.BACKUP, 5)]
    # A slot frees: user 1's next job, in order, takes it.
    release.setdefault((JobKind.BACKUP, 1), asyncio.Event()).set()
    await wait_until(lambda: len(started) == 4)
    assert started[3] == (JobKind.RESTORE, 3)
    # User 2's job ends: its slot stays free, user 1 is at their share.
    release.setdefault((JobKind.BACKUP, 5), asyncio.Event()).set()
    await wait_until(lambda: queue.running_count == 2)
    assert queue.queued_count == 1
    assert len(started) == 4
    await queue.shutdown()


def _dumping(settings: Settings, backups: list[dict[str, Any]]) -> list[int]:
    """Ids of the backups among ``backups`` whose pg_dump runs (markers are per instance)."""
    root = settings.backup_root.resolve()
    return [b["id"] for b in backups if tool_processes("pg_dump", f"backup:{b['id']}@{root}")]


@pytest.mark.parametrize("slots", [2, 3])
async def test_hanging_jobs_of_one_user_leave_a_slot_for_another(
    pg_server: Any, tmp_path: Path, slots: int
) -> None:
    locked = unique_name("locked")
    free = unique_name("free")
    spare = unique_name("spare")
    create_filled(pg_server, locked)
    create_filled(pg_server, free)
    pg_server.create_database(spare)
    settings = make_settings(tmp_path, max_concurrent_jobs=slots)
    try:
        async with running_app(settings) as (_, client):
            alice = await Api(client).signup()
            bob = await Api(client).signup()
            own = await alice.add_database(pg_server, free)
            earlier = await alice.wait_backup((await alice.start_backup(own["id"]))["id"])
            assert earlier["status"] == "completed"
            target = await alice.add_database(pg_server, spare)
            # The same locked database, registered once per slot: one job per registration.
            copies = [await alice.add_database(pg_server, locked) for _ in range(slots)]
            theirs = await bob.add_database(pg_server, free)
            with table_locked(pg_server, locked):
                hanging = [await alice.start_backup(copy["id"]) for copy in copies]
                await wait_until(lambda: len(_dumping(settings, hanging)) == slots - 1)
                response = await alice.post(
                    f"/api/backups/{earlier['id']}/restore", json={"database_id": target["id"]}
                )
                assert response.status_code == 202, response.text
                restore = response.json()["restore"]
                # Bob's backup starts in the slot Alice's jobs left, and completes.
                done = await bob.wait_backup((await bob.start_backup(theirs["id"]))["id"], 60)
                assert done["status"] == "completed"
                # Alice's other jobs wait their turn, never started.
                assert len(_dumping(settings, hanging)) == slots - 1
                waiting = [
                    (await alice.get(f"/api/backups/{b['id']}")).json()["backup"] for b in hanging
                ]
                assert sorted(b["started_at"] is None for b in waiting) == [False] * (slots - 1) + [
                    True
                ]
                queued = (await alice.get(f"/api/restores/{restore['id']}")).json()["restore"]
                assert queued["status"] == "pending"
                assert queued["started_at"] is None
            # Once the lock is gone, all of Alice's jobs run in turn.
            for backup in hanging:
                assert (await alice.wait_backup(backup["id"], 120))["status"] == "completed"
            assert (await alice.wait_restore(restore["id"], 120))["status"] == "completed"
    finally:
        for name in (locked, free, spare):
            pg_server.drop_database(name)


async def test_restores_count_against_the_per_user_cap(pg_server: Any, tmp_path: Path) -> None:
    source = unique_name("cap")
    targets = [unique_name("target") for _ in range(5)]
    create_filled(pg_server, source)
    for name in targets:
        pg_server.create_database(name)
    settings = make_settings(tmp_path, max_active_backups_per_user=3)
    try:
        async with running_app(settings) as (_, client):
            alice = await Api(client).signup()
            bob = await Api(client).signup()
            database = await alice.add_database(pg_server, source)
            earlier = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
            assert earlier["status"] == "completed"
            registered = [await alice.add_database(pg_server, name) for name in targets]
            with table_locked(pg_server, source):
                hanging = await alice.start_backup(database["id"])
                await wait_until(lambda: _dumping(settings, [hanging]))
                url = f"/api/backups/{earlier['id']}/restore"
                responses = await asyncio.gather(
                    *(alice.post(url, json={"database_id": t["id"]}) for t in registered)
                )
                statuses = sorted(r.status_code for r in responses)
                assert statuses == [202, 202, 429, 429, 429], statuses
                for refused in (r for r in responses if r.status_code == 429):
                    assert refused.json() == {"error": CAP_MESSAGE}
                    assert refused.headers["retry-after"] == "30"
                # The restores fill the cap for backups too.
                response = await alice.post(f"/api/backups/database/{database['id']}")
                assert response.status_code == 429
                assert response.json() == {"error": CAP_MESSAGE}
                # Another user is not affected.
                theirs = await bob.add_database(pg_server, targets[0])
                assert (await bob.post(f"/api/backups/database/{theirs['id']}")).status_code == 202
            accepted = [r.json()["restore"] for r in responses if r.status_code == 202]
            for restore in accepted:
                assert (await alice.wait_restore(restore["id"], 120))["status"] == "completed"
            listed = (await alice.get("/api/restores")).json()["restores"]
            assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in accepted)
    finally:
        for name in (source, *targets):
            pg_server.drop_database(name)
