"""A short soak (bench/soak.py): two one-minute slots, three databases, both faults.

The real service process, real servers and tools, real minutes: the schedules fire on the
wall clock's minutes (nothing is faked; the scheduler's poll setting only makes it notice
the recovered metadata database sooner). Each check of the soak must pass
(a slot missed or run twice, a backup stuck pending, an unexplained failure, no recovery
after a fault, retention off its preview, the service's memory, descriptors, threads or
children growing, a leftover .part file, job directory, multipart upload or zombie,
no 503 while the metadata database was away); each check's line is asserted here, so
that a check that silently stopped running fails too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Every check but the API's latency, a benchmark target that a test on a shared machine
#: must not time: its line is there, its verdict is the soak's.
CHECKS = (
    "slots",
    "pending",
    "failures",
    "recovery",
    "retention",
    "metadata restart",
    "resources",
    "leftovers",
)


# Real minutes: up to one to reach the first slot, two slots, 45 s after the last.
@pytest.mark.timeout(420)
def test_short_soak_finds_no_leak(tmp_path: Path) -> None:
    report = tmp_path / "soak.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            "--minutes",
            "2",
            "--databases",
            "3",
            "--no-fail",
            "--output",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = report.read_text()
    lines = text.splitlines()
    for name in CHECKS:
        (line,) = (line for line in lines if line.startswith(f"- {name}: "))
        assert line.endswith("(PASS)"), text
    assert "- API latency: " in text
    # Both faults happened: failed jobs with their reasons, then a recovery.
    (failures,) = (line for line in lines if line.startswith("- failures: "))
    assert not failures.startswith("- failures: 0 failed"), failures
