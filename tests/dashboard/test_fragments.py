"""The live fragment of a running backup: the progress the API's record carries (``phase``,
``progress``), shown when present, and the polling that stops once the backup has ended;
and the overview's red line, by the overdue watch's rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from backup_api.dashboard.views import overview_rows
from backup_api.dashboard.web import ENVIRONMENT
from backup_api.overdue import overdue_since
from backup_api.repositories.dashboard import Overview

RUNNING: dict[str, Any] = {
    "id": 7,
    "status": "pending",
    "started_at": "2026-11-28T10:00:00Z",
    "created_at": "2026-11-28T10:00:00Z",
    "trigger": "manual",
    "size": 0,
    "duration_seconds": None,
    "copies": [],
    "pinned": False,
    "checksum": None,
    "error_msg": None,
}


def _render(backup: dict[str, Any]) -> str:
    template = ENVIRONMENT.get_template("_backup_status.html")
    return template.render(backup=backup, csrf="t", csrf_field="csrf_token")


def test_a_running_backup_polls_and_shows_its_progress_when_the_record_has_it() -> None:
    bare = _render(RUNNING)
    assert 'hx-get="/backups/7/status" hx-trigger="every 1s"' in bare
    assert "en cours" in bare
    assert "<progress" not in bare
    assert "écrits" not in bare

    progress = {"bytes_written": 3 * 1024 * 1024, "estimated_total_bytes": 12 * 1024 * 1024}
    detailed = _render({**RUNNING, "phase": "dump", "progress": {**progress, "eta_seconds": 95}})
    assert "· dump" in detailed
    assert "3,0 Mio écrits" in detailed
    assert "sur environ 12,0 Mio" in detailed
    assert "fin estimée dans 1 min 35 s" in detailed
    assert f'<progress max="{12 * 1024 * 1024}" value="{3 * 1024 * 1024}"' in detailed


def test_an_ended_backup_stops_polling() -> None:
    done = _render({**RUNNING, "status": "completed", "finished_at": "2026-11-28T10:01:00Z"})
    assert "hx-trigger" not in done
    assert 'data-status="completed">terminée' in done
    failed = _render({**RUNNING, "status": "failed", "error_msg": "connexion impossible"})
    assert "hx-trigger" not in failed
    assert "échouée" in failed
    assert "connexion impossible" in failed


def test_the_red_line_is_the_overdue_watchs_rule() -> None:
    """A database with a completed backup turns red when the overdue watch would judge it
    overdue (1.5 hourly intervals since that backup ended), not before."""
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    created = now - timedelta(days=2)
    for minutes, late in ((89, False), (90, True), (200, True)):
        finished = now - timedelta(minutes=minutes)
        fields = {
            "id": 5,
            "status": "completed",
            "size": 1024,
            "created_at": finished - timedelta(seconds=30),
            "started_at": finished - timedelta(seconds=30),
            "finished_at": finished,
        }
        # A row's two faces: attributes, and the mapping ``status_of`` reads.
        backup = SimpleNamespace(**fields, _mapping=fields)
        data = Overview()
        data.databases = [SimpleNamespace(id=1, name="app", type="postgresql", db_name="app")]  # type: ignore[list-item]
        data.newest[1] = data.completed[1] = backup  # type: ignore[assignment]
        data.schedules[1] = SimpleNamespace(  # type: ignore[assignment]
            cron="0 * * * *", timezone="UTC", enabled=True, created_at=created, next_run_at=None
        )
        [row] = overview_rows(data, now)
        watch_row = SimpleNamespace(
            cron="0 * * * *", timezone="UTC", schedule_created_at=created, last_success_at=finished
        )
        assert row.late is late, minutes
        assert (overdue_since(watch_row, now) is not None) is late  # type: ignore[arg-type]
        if late:
            assert row.late_reason == (
                "aucune sauvegarde terminée depuis 1,5 fois l'intervalle planifié"
            )
