"""The dashboard's benchmark runs, on a small fill, and every page answers within target."""

from __future__ import annotations

import pytest
from bench import dashboard


def test_the_dashboard_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["--databases", "4", "--backups", "40", "--audit", "200", "--repeat", "2"]
    assert dashboard.main(arguments) == 0
    report = capsys.readouterr().out
    assert "4 databases, 40 backups, 200 audit entries" in report
    assert report.count("| yes |") == 12
