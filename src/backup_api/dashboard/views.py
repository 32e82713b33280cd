"""What the templates show, computed in Python: sizes, durations and ages in French, a
backup's state as a word, the overview's rows (with the red line's rule) and the size
chart, drawn as inline SVG on the server (no script, nothing to load)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_api import overdue
from backup_api.cron import CronError
from backup_api.repositories import Record
from backup_api.repositories.dashboard import Overview

STATUS_LABELS = {
    "pending": "en attente",
    "running": "en cours",
    "completed": "terminée",
    "failed": "échouée",
}
TRIGGER_LABELS = {
    "manual": "manuelle",
    "schedule": "planifiée",
    "retry": "nouvel essai",
    "import": "importée",
}


def as_utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def size(value: int | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("o", "Kio", "Mio", "Gio", "Tio"):
        if amount < 1024 or unit == "Tio":
            text = f"{amount:.0f}" if unit == "o" else f"{amount:.1f}".replace(".", ",")
            return f"{text} {unit}"
        amount /= 1024
    return f"{value} o"  # pragma: no cover (the loop returns)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        # The records keep whole seconds: a shorter job reads 0.
        return "< 1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def age(instant: datetime | str | None, now: datetime) -> str:
    moment = as_utc(instant)
    if moment is None:
        return "jamais"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return "à l'instant"
    if seconds < 3600:
        return f"il y a {seconds // 60} min"
    if seconds < 86400:
        return f"il y a {seconds // 3600} h"
    return f"il y a {seconds // 86400} j"


def when(instant: datetime | str | None) -> str:
    moment = as_utc(instant)
    if moment is None:
        return "—"
    return moment.strftime("%d/%m/%Y %H:%M UTC")


def status_of(backup: dict[str, Any] | Record) -> str:
    """``running`` for a pending job that has started; the record's status otherwise."""
    fields = backup if isinstance(backup, dict) else backup._mapping
    status = str(fields["status"])
    if status == "pending" and fields.get("started_at") is not None:
        return "running"
    return status


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def interval(schedule: Record, now: datetime) -> timedelta | None:
    """The time between two runs of an enabled schedule, as the overdue watch reads it."""
    if not schedule.enabled:
        return None
    try:
        return overdue.schedule_interval(schedule.cron, schedule.timezone, now)
    except CronError:
        return None


@dataclass
class OverviewRow:
    id: int
    name: str
    type: str
    db_name: str
    status: str
    last_at: datetime | None
    size: int | None
    duration: float | None
    next_run_at: datetime | None
    scheduled: bool
    late: bool
    late_reason: str
    chart: str


def overview_rows(data: Overview, now: datetime) -> list[OverviewRow]:
    rows = []
    # Databases often share a schedule's timing: each is worked out once per page.
    intervals: dict[tuple[str, str, bool], timedelta | None] = {}
    for database in data.databases:
        newest = data.newest.get(database.id)
        completed = data.completed.get(database.id)
        schedule = data.schedules.get(database.id)
        every = None
        if schedule is not None:
            timing = (schedule.cron, schedule.timezone, bool(schedule.enabled))
            if timing not in intervals:
                intervals[timing] = interval(schedule, now)
            every = intervals[timing]
        late, reason = False, ""
        if schedule is not None and every is not None:
            # The overdue watch's rule: the one by which ``backup.overdue`` is announced.
            finished = completed.finished_at or completed.created_at if completed else None
            limit = overdue.deadline(
                interval=every,
                schedule_created_at=schedule.created_at,
                last_success_at=finished,
            )
            if now >= limit:
                late = True
                reason = (
                    "aucune sauvegarde terminée"
                    if finished is None
                    else "aucune sauvegarde terminée depuis 1,5 fois l'intervalle planifié"
                )
        started = as_utc(newest.started_at) if newest else None
        finished_at = as_utc(newest.finished_at) if newest else None
        rows.append(
            OverviewRow(
                id=database.id,
                name=database.name,
                type=database.type,
                db_name=database.db_name,
                status=status_of(newest) if newest else "",
                last_at=as_utc(newest.created_at) if newest else None,
                size=newest.size if newest and newest.status == "completed" else None,
                duration=(finished_at - started).total_seconds()
                if started and finished_at
                else None,
                next_run_at=as_utc(schedule.next_run_at) if schedule is not None else None,
                scheduled=schedule is not None,
                late=late,
                late_reason=reason,
                chart=size_chart(data.sizes.get(database.id, [])),
            )
        )
    return rows


CHART_WIDTH = 120
CHART_HEIGHT = 28


def size_chart(points: list[tuple[Any, int]]) -> str:
    """A sparkline of backup sizes (oldest left), as an SVG element; empty below two
    points. Its text alternative names the range, for screen readers."""
    if len(points) < 2:
        return ""
    sizes = [value for _, value in points]
    low, high = min(sizes), max(sizes)
    span = (high - low) or 1
    step = CHART_WIDTH / (len(sizes) - 1)
    coordinates = " ".join(
        f"{index * step:.1f},{CHART_HEIGHT - 2 - (value - low) / span * (CHART_HEIGHT - 4):.1f}"
        for index, value in enumerate(sizes)
    )
    label = f"Taille des {len(sizes)} dernières sauvegardes : de {size(low)} à {size(high)}"
    return (
        f'<svg class="chart" role="img" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" aria-label="{label}">'
        f"<title>{label}</title>"
        f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{coordinates}"/>'
        "</svg>"
    )
