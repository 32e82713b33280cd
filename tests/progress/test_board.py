"""The progress board's arithmetic: the rate over its window, a stall, the time left, and
what a record shows in each state (a clock of the test's own: no timing involved)."""

from __future__ import annotations

from backup_api.jobs.progress import RATE_WINDOW_SECONDS, ProgressBoard, live_fields
from backup_api.jobs.queue import JobKind
from backup_api.models import JobPhase


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_backup_streaming_at_a_steady_rate() -> None:
    clock = Clock()
    board = ProgressBoard(clock)
    entry = board.open(JobKind.BACKUP, 7, JobPhase.DUMPING)
    entry.estimated_total_bytes = 10_000_000
    for _ in range(30):  # three seconds of reports, ten a second, 100 kB each
        clock.now += 0.1
        entry.add_read(100_000)
    entry.set_written(1_000_000)
    snapshot = entry.snapshot()
    assert snapshot["bytes_read"] == 3_000_000
    assert snapshot["bytes_written"] == 1_000_000
    assert snapshot["bytes_per_second"] == 1_000_000
    assert snapshot["estimated_total_bytes"] == 10_000_000
    assert snapshot["eta_seconds"] == 7.0
    assert live_fields(board, JobKind.BACKUP, 7, "pending") == (JobPhase.DUMPING, snapshot)


def test_the_rate_looks_at_the_last_seconds_only() -> None:
    clock = Clock()
    entry = ProgressBoard(clock).open(JobKind.BACKUP, 1, JobPhase.DUMPING)
    for _ in range(50):  # fast first: 1 MB/s for five seconds
        clock.now += 0.1
        entry.add_read(100_000)
    for _ in range(50):  # then ten times slower
        clock.now += 0.1
        entry.add_read(10_000)
    assert entry.snapshot()["bytes_per_second"] == 100_000


def test_a_stalled_dump_has_no_rate_and_no_time_left() -> None:
    clock = Clock()
    entry = ProgressBoard(clock).open(JobKind.BACKUP, 1, JobPhase.DUMPING)
    entry.estimated_total_bytes = 5_000_000
    for _ in range(10):
        clock.now += 0.1
        entry.add_read(100_000)
    clock.now += RATE_WINDOW_SECONDS + 1  # held by a lock: no report comes
    snapshot = entry.snapshot()
    assert snapshot["bytes_read"] == 1_000_000
    assert snapshot["bytes_per_second"] == 0
    assert snapshot["eta_seconds"] is None


def test_no_time_left_without_an_estimate_or_past_it() -> None:
    clock = Clock()
    entry = ProgressBoard(clock).open(JobKind.BACKUP, 1, JobPhase.DUMPING)
    clock.now += 1
    entry.add_read(2_000_000)
    assert entry.snapshot()["eta_seconds"] is None
    entry.estimated_total_bytes = 1_000_000
    assert entry.snapshot()["eta_seconds"] is None


def test_a_restore_measures_the_sql_it_hands_to_the_tool() -> None:
    clock = Clock()
    entry = ProgressBoard(clock).open(JobKind.RESTORE, 3, JobPhase.RESTORING)
    entry.estimated_total_bytes = 4_000_000
    for step in range(1, 21):
        clock.now += 0.1
        entry.set_written(step * 100_000)
        entry.set_read(step * 25_000)
    snapshot = entry.snapshot()
    assert (snapshot["bytes_written"], snapshot["bytes_read"]) == (2_000_000, 500_000)
    assert snapshot["bytes_per_second"] == 1_000_000
    assert snapshot["eta_seconds"] == 2.0


def test_what_a_record_shows_in_each_state() -> None:
    board = ProgressBoard(Clock())
    assert live_fields(board, JobKind.BACKUP, 9, "pending") == (JobPhase.QUEUED, None)
    assert live_fields(board, JobKind.BACKUP, 9, "completed") == (None, None)
    entry = board.open(JobKind.BACKUP, 9, JobPhase.DUMPING)
    assert live_fields(board, JobKind.RESTORE, 9, "pending") == (JobPhase.QUEUED, None)
    entry.phase = JobPhase.FINISHING
    assert live_fields(board, JobKind.BACKUP, 9, "pending")[0] == JobPhase.FINISHING
    assert live_fields(board, JobKind.BACKUP, 9, "failed") == (None, None)
    board.close(entry)
    assert entry.closed.is_set()
    assert board.get(JobKind.BACKUP, 9) is None
    assert len(board) == 0
