"""The benchmark script keeps working (a tiny run; its timings are not asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(tmp_path: Path, *options: str, fail: bool = False) -> str:
    """A ``--quick`` run with ``options``; its report. Tiny databases miss the timing
    targets by design: ``--no-fail`` keeps those out of the exit status, unless ``fail``,
    where the run must end with status 1 and name what it missed."""
    report = tmp_path / "report.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.benchmark",
            "--quick",
            *([] if fail else ["--no-fail"]),
            *options,
            "--output",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    expected = 1 if fail else 0
    assert result.returncode == expected, result.stdout[-2000:] + result.stderr[-2000:]
    if fail:
        # The API's job costs tens of milliseconds that a 3 MB dump cannot hide.
        assert "targets missed: bench_pg_3" in result.stdout
    return report.read_text()


def test_benchmark_quick_run(tmp_path: Path) -> None:
    text = run_benchmark(tmp_path)
    assert "| PostgreSQL 3 MB |" in text
    assert "| PostgreSQL 6 MB |" in text
    # Both sizes again, backed up to the S3 server alone.
    assert "| PostgreSQL 3 MB to S3 |" in text
    assert "| PostgreSQL 6 MB to S3 |" in text
    assert "| MariaDB " in text
    assert "Peak RSS over idle" in text
    assert "- Peak RSS over idle by database size, to S3 (the upload process counted): " in text
    assert "the upload process's own peak RSS: " in text
    assert "- MariaDB " in text
    # Each table's rows counted apart over the same dumps: a target on PostgreSQL.
    assert "- PostgreSQL 6 MB: counting each table's rows in the dump stream" in text
    assert "(target ≤ 3%: " in text
    assert "of the API backup's time" in text
    assert text.count("(reported as measured)") == 1
    assert "Lowest possible API / bare ratio here:" in text
    assert "- PostgreSQL 6 MB to S3: the bare dump kept the machine" in text
    # Before each database's turns: two PostgreSQL, the same two to S3, MariaDB.
    assert "- CPU steadiness: the same pure-Python loop, timed 5 times" in text
    assert "while two backups run, 20 clients" in text
    assert "while two backups run, each followed by an event stream, 20 clients" in text
    assert "- Event streams (`GET /api/backups/{id}/events`) on the 2 running backups: " in text
    # The POSTs of the latency load, accepted and refused apart, each with its count.
    assert "- POST /api/backups/database/{id} answered 202 while two backups run" in text
    assert "- POST /api/backups/database/{id} answered 429 while two backups run" in text
    assert "| dump \\| zip -1 |" in text
    # What was archived is what the bare tool dumps (the key lines aside).
    for label in ("PostgreSQL 3 MB", "PostgreSQL 6 MB", "MariaDB 3 MB"):
        line = next(line for line in text.splitlines() if line.startswith(f"- {label}: the API"))
        assert line.endswith("(PASS)"), line
    # Restores: the API's against the bare clients, with latency during one.
    assert "| restore (plain SQL) | client -f dump.sql | unzip -p \\| client | API restore" in text
    assert "| PostgreSQL 6 MB | " in text.split("| restore (plain SQL)")[1]
    assert "| MariaDB 3 MB | " in text.split("| restore (plain SQL)")[1]
    assert "- GET /api/backups during an API restore of PostgreSQL 6 MB, 20 clients" in text
    assert "- GET /api/backups during an API restore of MariaDB 3 MB, 20 clients" in text
    assert "GET /api/backups?limit=100 over" in text
    assert "(2 downloaded from S3): all pass `unzip -t` and `zipfile.testzip()`" in text
    assert "- PostgreSQL 6 MB encrypted (age, to a recipient): " in text
    assert "x the unencrypted API backup (" in text
    assert "encrypted files: `age -d -i` gives ZIPs that pass the same checks" in text
    # Every target line carries a verdict; the verdicts themselves are the benchmark's job.
    assert text.count("PASS") + text.count("FAIL") >= 16


def test_benchmark_follows_each_backups_event_stream(tmp_path: Path) -> None:
    text = run_benchmark(tmp_path, "--skip-mysql", "--skip-s3", "--follow")
    assert "| PostgreSQL 3 MB |" in text
    assert "- Every API backup above was followed by a client of its event stream " in text


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="--compare checks out a git revision")
def test_benchmark_compares_with_a_revision(tmp_path: Path) -> None:
    # Without --no-fail: a missed target makes the exit status non-zero.
    text = run_benchmark(tmp_path, "--skip-mysql", "--skip-s3", "--compare", "HEAD", fail=True)
    assert "Compared with HEAD (alternated, same run):" in text
    assert "to S3" not in text
    assert "- PostgreSQL 3 MB: API backup " in text
    assert "s with HEAD (" in text
    assert "- Latency with HEAD, in the same conditions:" in text
    # The reference's checkout is removed again.
    worktrees = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "reference" not in worktrees
