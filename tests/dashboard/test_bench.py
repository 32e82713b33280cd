"""The dashboard's benchmark runs, on a small fill, and every page answers within target."""

from __future__ import annotations

import pytest
from bench import dashboard


def test_the_dashboard_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert dashboard.main(["--databases", "4", "--backups", "40", "--repeat", "2"]) == 0
    report = capsys.readouterr().out
    assert "4 databases, 40 backups" in report
    assert report.count("| yes |") == 8
