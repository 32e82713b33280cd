"""Job events (``backup_api.jobs.records``): each one is written to its record before the
listeners hear of it, and a listener that fails leaves the job alone."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from backup_api.jobs.queue import JobKind
from backup_api.jobs.records import JobCompleted, JobEvent, JobFailed, JobStarted
from tests.support.apphelpers import Api, unique_name
from tests.support.locks import wait_until
from tests.support.sample_data import create_filled


async def test_listeners_hear_each_event_once_its_record_says_so(
    pg_server: Any, app: FastAPI, alice: Api
) -> None:
    state = app.state.backup_api
    heard: list[tuple[JobEvent, dict[str, Any]]] = []

    async def listener(event: JobEvent) -> None:
        # What the record holds when the listener is told.
        response = await alice.get(f"/api/backups/{event.job_id}")
        heard.append((event, response.json()["backup"]))

    async def failing(event: JobEvent) -> None:
        raise RuntimeError("a listener's own bug")

    state.records.listeners[:] = [failing, listener]
    source = unique_name("events")
    create_filled(pg_server, source)
    database = await alice.add_database(pg_server, source)
    backup = await alice.start_backup(database["id"])
    assert (await alice.wait_backup(backup["id"]))["status"] == "completed"
    # A database dropped once registered: its backup fails.
    gone = unique_name("gone")
    pg_server.create_database(gone)
    missing = await alice.add_database(pg_server, gone)
    pg_server.drop_database(gone)
    failed = await alice.start_backup(missing["id"])
    assert (await alice.wait_backup(failed["id"]))["status"] == "failed"
    # The record is written before the listeners are told: they may still be at work.
    await wait_until(lambda: len(heard) == 4)

    kinds = [(type(event), event.kind, event.job_id) for event, _ in heard]
    assert kinds == [
        (JobStarted, JobKind.BACKUP, backup["id"]),
        (JobCompleted, JobKind.BACKUP, backup["id"]),
        (JobStarted, JobKind.BACKUP, failed["id"]),
        (JobFailed, JobKind.BACKUP, failed["id"]),
    ]
    (_, started), (completed_event, completed), _, (failed_event, failure) = heard
    assert started["status"] == "pending"
    assert started["started_at"] is not None
    assert isinstance(completed_event, JobCompleted)
    assert completed["status"] == "completed"
    assert completed["size"] == completed_event.results["size"] > 0
    assert isinstance(failed_event, JobFailed)
    assert failure["status"] == "failed"
    assert failure["error_msg"] == failed_event.reason != ""
