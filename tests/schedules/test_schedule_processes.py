"""Two service processes on one PostgreSQL metadata database: each slot starts once.

Both run the scheduler on the real clock, reading the schedules every 0.2 s. Each round
every schedule's slot is put in the past at once (as slots missed while no process ran),
so both processes find the same slots due and race to claim them.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.support.apphelpers import PASSWORD, pg_metadata_url, unique_name
from tests.support.serverproc import ServerProcess, server_process

SCHEDULES = 8
ROUNDS = 3


def _wait(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_two_processes_start_each_slot_once(pg_server: Any, tmp_path: Path) -> None:
    metadata = unique_name("meta")
    pg_server.create_database(metadata)
    sources = [unique_name("twoproc") for _ in range(SCHEDULES)]
    for source in sources:
        pg_server.create_database(source)
    settings = {
        "database_url": pg_metadata_url(pg_server, metadata),
        # One service, two processes: the same keys and backup root.
        "secrets_dir": str(tmp_path / "secrets"),
        "backup_root": str(tmp_path / "backups"),
        "scheduler_poll_seconds": "0.2",
        "schedule_retries": "0",
        "max_active_backups_per_user": "100",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        server_process(tmp_path / "a", **settings) as first,
        server_process(tmp_path / "b", **settings) as second,
    ):
        first.start()
        second.start()
        with httpx.Client(base_url=first.url, timeout=30) as api:
            email = "ops@example.com"
            response = api.post("/auth/register", json={"email": email, "password": PASSWORD})
            assert response.status_code == 201, response.text
            token = api.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
            api.headers["Authorization"] = f"Bearer {token['token']}"
            ids = []
            for source in sources:
                body = {
                    "name": source,
                    "type": "postgresql",
                    "host": pg_server.host,
                    "port": str(pg_server.port),
                    "username": pg_server.user,
                    "password": pg_server.password,
                    "db_name": source,
                }
                response = api.post("/api/databases", json=body)
                assert response.status_code == 201, response.text
                database_id = response.json()["database"]["id"]
                response = api.put(
                    f"/api/databases/{database_id}/schedule", json={"cron": "0 3 * * *"}
                )
                assert response.status_code == 200, response.text
                ids.append(database_id)

            def backups() -> list[dict[str, Any]]:
                listing: list[dict[str, Any]] = api.get("/api/backups").json()["backups"]
                return listing

            def unclaimed() -> int:
                rows = pg_server.query(
                    "SELECT count(*) FROM schedules WHERE next_run_at <= now()", metadata
                )
                return int(rows[0][0] or 0)

            for round_ in range(1, ROUNDS + 1):
                pg_server.execute(
                    "UPDATE schedules SET next_run_at = now() - interval '1 minute'", metadata
                )
                _wait(lambda: unclaimed() == 0, "slots left unclaimed")
                _wait(
                    lambda round_=round_: (
                        len(backups()) >= SCHEDULES * round_
                        and all(b["status"] != "pending" for b in backups())
                    ),
                    "backups not ended",
                )
                listing = backups()
                per_database = Counter(b["database_id"] for b in listing)
                assert per_database == dict.fromkeys(ids, round_), per_database
                assert {b["trigger"] for b in listing} == {"schedule"}
                assert {b["status"] for b in listing} == {"completed"}, listing
                for database_id in ids:
                    response = api.get(f"/api/databases/{database_id}/schedule")
                    schedule = response.json()["schedule"]
                    assert schedule["skipped_runs"] == 0, schedule

        started = {server.port: _started(server) for server in (first, second)}
    # Every backup was started by exactly one of the two processes.
    assert sum(started.values()) == SCHEDULES * ROUNDS, started
    for name in [metadata, *sources]:
        pg_server.drop_database(name)


def _started(server: ServerProcess) -> int:
    return sum(
        1
        for line in server.log.read_text().splitlines()
        if "backup_api.scheduler" in line and "schedule backup" in line and "started" in line
    )
