"""``GET /metrics``: the service in Prometheus' text format, behind a bearer token.

The job counts, sizes and durations are read from the backup and restore records at
scrape time (a few GROUP BY queries through ``Metadata.read``), not kept in counters in
memory: they match the records exactly, whichever process of a shared metadata database
ran the jobs, and survive restarts. The price: deleting records (retention, a
``DELETE``) lowers a count, which Prometheus' ``rate()`` reads as a counter reset; the
alerts that matter read the per-database gauges (last success, last status, overdue),
which deletions never move backwards.

Each application has its own ``CollectorRegistry`` (tests build many apps in one
process); its one collector yields the families a scrape gathered just before. Other
parts of the service add theirs by appending a ``Source`` to ``Metrics.sources`` (a
function of a metadata connection and the clock's now), labelling per-database series
with ``database_labels`` so that they join with the ones here.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Connection

from backup_api.config import Settings
from backup_api.exceptions import NotFound, Unauthorized
from backup_api.models import JobStatus, as_utc
from backup_api.overdue import overdue_since
from backup_api.repositories import Record
from backup_api.repositories import drills as drill_records
from backup_api.repositories import metrics as metrics_records
from backup_api.state import AppState

PREFIX = "backup_api_"

#: Labels of every per-database series: what an alert names, and the owner to tell.
DATABASE_LABELS = ("database_id", "database_name", "user_id")

DURATION_BUCKETS: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600,
)  # fmt: skip
_MIB = 1024 * 1024
SIZE_BUCKETS: tuple[float, ...] = (
    _MIB, 10 * _MIB, 100 * _MIB, 1024 * _MIB, 10 * 1024 * _MIB, 100 * 1024 * _MIB,
)  # fmt: skip

BAD_TOKEN = "jeton des métriques absent ou invalide"  # noqa: S105 (a message)

#: What a part of the service contributes to a scrape, read in the scrape's transaction.
Source = Callable[[Connection, datetime], Iterable[Metric]]


def database_labels(database_id: int, name: str, user_id: int) -> list[str]:
    return [str(database_id), name, str(user_id)]


def check_token(settings: Settings, authorization: str | None) -> None:
    """404 when metrics are off (as if the route did not exist), 401 unless the request
    carries the configured bearer token (compared in constant time)."""
    expected = settings.metrics_token
    if expected is None:
        raise NotFound()
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), expected.get_secret_value().encode()
    ):
        raise Unauthorized(BAD_TOKEN)


def _counter(name: str, documentation: str, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, documentation, labels=list(labels))


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=list(labels))


def _histogram(
    name: str, documentation: str, rows: list[Record], bounds: Sequence[float]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(PREFIX + name, documentation, labels=["db_type"])
    for row in rows:
        buckets: list[tuple[str, float]] = [
            (repr(float(bound)), float(row._mapping[f"le_{index}"] or 0))
            for index, bound in enumerate(bounds)
        ]
        buckets.append(("+Inf", float(row.total)))
        family.add_metric([row.db_type], buckets, sum_value=float(row.sum or 0))
    return family


def record_metrics(connection: Connection, now: datetime) -> Iterable[Metric]:
    """Everything the records say: job outcomes, sizes, durations, each database's state."""
    backups = _counter(
        "backups",
        "Ended backups, by database type, trigger and outcome (completed, failed)",
        ("db_type", "trigger", "outcome"),
    )
    dumped: dict[str, float] = defaultdict(float)
    for row in metrics_records.backup_outcomes(connection):
        backups.add_metric([row.db_type, row.trigger, row.status], float(row.jobs))
        dumped[row.db_type] += float(row.dumped_bytes)
    dumped_bytes = _counter(
        "dumped_bytes",
        "Bytes the dump tools wrote (uncompressed SQL), by database type",
        ["db_type"],
    )
    for db_type, total in sorted(dumped.items()):
        dumped_bytes.add_metric([db_type], total)

    restores = _counter(
        "restores", "Ended restores, by database type and outcome", ("db_type", "outcome")
    )
    for row in metrics_records.restore_outcomes(connection):
        # A restore whose backup was deleted since no longer says which engine it ran.
        restores.add_metric([row.db_type or "unknown", row.status], float(row.jobs))

    duration = _histogram(
        "backup_duration_seconds",
        "Completed backups' durations, from start to end",
        metrics_records.duration_histogram(connection, DURATION_BUCKETS),
        DURATION_BUCKETS,
    )
    size = _histogram(
        "backup_size_bytes",
        "Completed backups' stored sizes (the archive)",
        metrics_records.size_histogram(connection, SIZE_BUCKETS),
        SIZE_BUCKETS,
    )

    last_success = _gauge(
        "last_success_timestamp_seconds",
        "End of each database's newest completed backup (Unix time; 0: none yet)",
        DATABASE_LABELS,
    )
    last_status = _gauge(
        "last_backup_status",
        "Outcome of each database's newest ended backup: 1 completed, 0 failed "
        "(absent before its first)",
        DATABASE_LABELS,
    )
    last_drill = _gauge(
        "last_drill_success_timestamp_seconds",
        "End of each database's newest passed restore drill (Unix time; databases drilled "
        "at least once)",
        DATABASE_LABELS,
    )
    drilled = drill_records.last_drill_success_by_database(connection)
    for row in metrics_records.database_states(connection):
        labels = database_labels(row.id, row.name, row.user_id)
        if row.id in drilled:
            last_drill.add_metric(labels, drilled[row.id].timestamp())
        at = row.last_success_at
        last_success.add_metric(labels, 0.0 if at is None else as_utc(at).timestamp())
        if row.last_status is not None:
            last_status.add_metric(labels, 1.0 if row.last_status == JobStatus.COMPLETED else 0.0)

    overdue = _gauge(
        "backup_overdue",
        "1 when a scheduled database has no completed backup within 1.5 times its "
        "schedule's interval, else 0 (databases with an enabled schedule only)",
        DATABASE_LABELS,
    )
    for row in metrics_records.scheduled(connection):
        labels = database_labels(row.database_id, row.database_name, row.user_id)
        overdue.add_metric(labels, 0.0 if overdue_since(row, now) is None else 1.0)
    return [
        backups,
        restores,
        dumped_bytes,
        duration,
        size,
        last_success,
        last_status,
        overdue,
        last_drill,
    ]


class _Gathered:
    """The registry's collector: the families of the scrape being rendered."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._gathered = _Gathered()
        self.registry.register(self._gathered)
        #: Read at each scrape, in one metadata transaction.
        self.sources: list[Source] = [record_metrics]

    async def render(self, state: AppState) -> bytes:
        """One scrape: the sources' families, the queue's, the free space."""
        now = state.overdue.clock.now()
        sources = list(self.sources)

        def read(connection: Connection) -> list[Metric]:
            return [family for source in sources for family in source(connection, now)]

        families = await state.metadata.read(read)
        families.extend(_queue_metrics(state))
        families.extend(await _space_metrics(state))
        # No await between filling and rendering: two scrapes never mix their families.
        self._gathered.families = families
        try:
            return generate_latest(self.registry)
        finally:
            self._gathered.families = []


def _queue_metrics(state: AppState) -> list[Metric]:
    running = GaugeMetricFamily(
        PREFIX + "jobs_running", "Backups and restores running now", value=state.queue.running_count
    )
    queued = GaugeMetricFamily(
        PREFIX + "jobs_queued",
        "Backups and restores waiting for a slot",
        value=state.queue.queued_count,
    )
    return [running, queued]


async def _space_metrics(state: AppState) -> list[Metric]:
    # The backup root's filesystem; an S3 bucket has no free space to ask about.
    free = _gauge("destination_free_bytes", "Free space where backups are written", ["destination"])
    total = _gauge("destination_size_bytes", "Size of that space", ["destination"])
    try:
        space = await state.storage.space()
    except OSError:
        return [free, total]
    free.add_metric(["local"], float(space.free_bytes))
    total.add_metric(["local"], float(space.total_bytes))
    return [free, total]
