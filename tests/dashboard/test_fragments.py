"""The live fragment of a running backup: the progress the API's record carries (``phase``,
``progress``), shown when present, and the polling that stops once the backup has ended."""

from __future__ import annotations

from typing import Any

from backup_api.dashboard.web import ENVIRONMENT

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
