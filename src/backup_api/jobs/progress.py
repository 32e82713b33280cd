"""Live progress of the running jobs, in this process's memory only.

A job's pipeline opens its entry when it starts and closes it however it ends; its archive
process reports the bytes it handled about ten times a second (``archiving.child``), and
those reports, not the data, advance the entry: nothing here runs per chunk of a dump,
and nothing is written to the metadata database. The routes read a snapshot of an entry
(``GET /api/backups/{id}`` and its event stream), computed when asked.

The SQL stream is what is measured and estimated: for a backup, the dump tool's output
(``bytes_read``) against the expected size of the dump; for a restore, the SQL handed to
the restore tool (``bytes_written``) against the backup's dump size.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from backup_api.jobs.queue import JobKind
from backup_api.models import JobPhase, JobStatus

#: How far back the rate looks: long enough to smooth the reports' steps, short enough to
#: show a stall within seconds.
RATE_WINDOW_SECONDS = 5.0
SAMPLES = 80


@dataclass
class JobProgress:
    """One running job's counters (advanced on the event loop, by its pipeline)."""

    kind: JobKind
    job_id: int
    phase: JobPhase
    clock: Callable[[], float] = time.monotonic
    bytes_read: int = 0
    bytes_written: int = 0
    #: The expected size of the SQL stream, once known (None: no estimate).
    estimated_total_bytes: int | None = None
    #: Set when the entry closes: the event streams waiting on it wake at once.
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=SAMPLES))

    def __post_init__(self) -> None:
        self._samples.append((self.clock(), 0))

    @property
    def streamed(self) -> int:
        """The bytes of the SQL stream so far (what the estimate is about)."""
        return self.bytes_read if self.kind is JobKind.BACKUP else self.bytes_written

    def add_read(self, count: int) -> None:
        self.bytes_read += count
        if self.kind is JobKind.BACKUP:
            self._sample()

    def set_written(self, total: int) -> None:
        if total > self.bytes_written:
            self.bytes_written = total
            if self.kind is JobKind.RESTORE:
                self._sample()

    def set_read(self, total: int) -> None:
        if total > self.bytes_read:
            self.bytes_read = total

    def _sample(self) -> None:
        # Reports come about ten a second: the deque spans a little more than the window.
        self._samples.append((self.clock(), self.streamed))

    def bytes_per_second(self) -> float:
        """The stream's rate over the last ``RATE_WINDOW_SECONDS`` (0 once it stalled
        for that long)."""
        now = self.clock()
        # The newest sample at least a window old, else the oldest kept.
        base_time, base_bytes = self._samples[0]
        for sample_time, sample_bytes in self._samples:
            if now - sample_time < RATE_WINDOW_SECONDS:
                break
            base_time, base_bytes = sample_time, sample_bytes
        elapsed = now - base_time
        if elapsed <= 0:
            return 0.0
        return max(0, self.streamed - base_bytes) / elapsed

    def snapshot(self) -> dict[str, object]:
        """The ``progress`` object of the job's record."""
        rate = self.bytes_per_second()
        estimate = self.estimated_total_bytes
        remaining = None if estimate is None else estimate - self.streamed
        eta = None
        # Unknown rather than wrong: no estimate, a stalled stream, or an estimate the
        # stream already went past.
        if remaining is not None and remaining >= 0 and rate > 0:
            eta = round(remaining / rate, 1)
        return {
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_per_second": round(rate),
            "estimated_total_bytes": estimate,
            "eta_seconds": eta,
        }


class ProgressBoard:
    """The running jobs' entries, by kind and id (one per job at a time)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[JobKind, int], JobProgress] = {}

    def open(self, kind: JobKind, job_id: int, phase: JobPhase) -> JobProgress:
        entry = JobProgress(kind, job_id, phase, clock=self._clock)
        self._entries[(kind, job_id)] = entry
        return entry

    def close(self, entry: JobProgress) -> None:
        if self._entries.get((entry.kind, entry.job_id)) is entry:
            del self._entries[(entry.kind, entry.job_id)]
        entry.closed.set()

    def get(self, kind: JobKind, job_id: int) -> JobProgress | None:
        return self._entries.get((kind, job_id))

    def __len__(self) -> int:
        return len(self._entries)


def live_fields(
    board: ProgressBoard, kind: JobKind, job_id: int, status: str
) -> tuple[JobPhase | None, dict[str, object] | None]:
    """The ``phase`` and ``progress`` of a job's record whose status is ``status``: a
    pending job not yet running is ``queued``; one that ended has neither."""
    if status != JobStatus.PENDING.value:
        return None, None
    entry = board.get(kind, job_id)
    if entry is None:
        return JobPhase.QUEUED, None
    return entry.phase, entry.snapshot()


def live_json(board: ProgressBoard, kind: JobKind, job_id: int, status: str) -> bytes:
    """``"phase":...,"progress":...``: the two fields as JSON members."""
    phase, progress = live_fields(board, kind, job_id, status)
    return (
        b'"phase":' + json.dumps(phase).encode() + b',"progress":' + json.dumps(progress).encode()
    )
