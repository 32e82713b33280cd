"""Cron expressions in a zone, across both daylight-saving changes of a year (Europe/Paris,
2026: clocks go from 02:00 to 03:00 on 29 March, and from 03:00 back to 02:00 on 25
October), with Debian cron's rules."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backup_api.cron import CronError, CronSchedule

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(
    expression: str, start: datetime, end: datetime, zone: str = "Europe/Paris"
) -> list[datetime]:
    schedule = CronSchedule(expression, zone)
    found = []
    instant = schedule.next_after(start)
    while instant < end:
        found.append(instant)
        instant = schedule.next_after(instant)
    return found


def test_a_nightly_run_keeps_its_wall_clock_time_in_winter_and_summer() -> None:
    schedule = CronSchedule("0 3 * * *", "Europe/Paris")
    assert schedule.next_after(utc(2026, 1, 15, 12)) == utc(2026, 1, 16, 2)  # UTC+1
    assert schedule.next_after(utc(2026, 7, 15, 12)) == utc(2026, 7, 16, 1)  # UTC+2
    # The same expression in UTC does not move.
    assert CronSchedule("0 3 * * *", "UTC").next_after(utc(2026, 7, 15, 12)) == utc(2026, 7, 16, 3)


def test_a_time_in_the_spring_gap_runs_once_at_the_first_minute_after_it() -> None:
    found = runs("30 2 * * *", utc(2026, 3, 27, 12), utc(2026, 3, 31, 12))
    local = [instant.astimezone(PARIS).strftime("%d %H:%M") for instant in found]
    assert local == ["28 02:30", "29 03:00", "30 02:30", "31 02:30"]


def test_an_ambiguous_time_on_the_fall_back_day_runs_once() -> None:
    found = runs("30 2 * * *", utc(2026, 10, 23, 12), utc(2026, 10, 26, 12))
    assert found == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first of the two 02:30s
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]
    # From inside the repeated hour (02:10 CET, after the 02:30 CEST run): no second run.
    schedule = CronSchedule("30 2 * * *", "Europe/Paris")
    assert schedule.next_after(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)


def test_a_fixed_time_runs_once_every_local_day_of_a_whole_year() -> None:
    found = runs("30 2 * * *", utc(2025, 12, 31, 12), utc(2026, 12, 31, 12))
    days = [instant.astimezone(PARIS).date() for instant in found]
    assert days == [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    times = {instant.astimezone(PARIS).strftime("%H:%M") for instant in found}
    assert times == {"02:30", "03:00"}
    assert [i for i in found if i.astimezone(PARIS).strftime("%H:%M") == "03:00"] == [
        utc(2026, 3, 29, 1)
    ]


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        # The local day of 29 March has 23 hours, that of 25 October 25.
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 23),
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 25),
    ],
)
def test_hourly_expressions_follow_elapsed_hours(
    start: datetime, end: datetime, count: int
) -> None:
    for expression in ("0 * * * *", "@hourly"):
        found = runs(expression, start - timedelta(seconds=1), end - timedelta(seconds=1))
        assert len(found) == count
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(found))


def test_quarter_hours_follow_elapsed_time_through_both_changes() -> None:
    for start in (utc(2026, 3, 28, 23), utc(2026, 10, 24, 22)):
        found = runs("*/15 * * * *", start - timedelta(seconds=1), start + timedelta(hours=5))
        assert len(found) == 20
        assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(found))
    # Both 02:15 of the fall-back day run: elapsed time, not wall-clock time.
    local = [
        instant.astimezone(PARIS).strftime("%H:%M")
        for instant in runs("*/15 * * * *", utc(2026, 10, 24, 23, 59), utc(2026, 10, 25, 2, 1))
    ]
    assert local.count("02:15") == 2


def test_the_next_run_is_strictly_later() -> None:
    schedule = CronSchedule("* * * * *", "Europe/Paris")
    assert schedule.next_after(utc(2026, 5, 1, 10, 0)) == utc(2026, 5, 1, 10, 1)
    assert schedule.next_after(utc(2026, 5, 1, 10, 0, 59)) == utc(2026, 5, 1, 10, 1)


@pytest.mark.parametrize(
    ("shortcut", "expected"),
    [
        ("@daily", utc(2026, 5, 2, 0)),
        ("@weekly", utc(2026, 5, 3, 0)),  # a Sunday
        ("@monthly", utc(2026, 6, 1, 0)),
    ],
)
def test_shortcuts(shortcut: str, expected: datetime) -> None:
    assert CronSchedule(shortcut, "UTC").next_after(utc(2026, 5, 1, 10)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * * *", "cinq champs attendus"),
        ("0 3 * *", "cinq champs attendus"),
        ("", "cinq champs attendus"),
        ("@yearly", "raccourci inconnu"),
        ("61 * * * *", "minute invalide"),
        ("0 24 * * *", "heure invalide"),
        ("0 0 31 2 *", "jour du mois invalide"),
        ("0 0 * 13 *", "mois invalide"),
        ("0 0 * * 8", "jour de la semaine invalide"),
    ],
)
def test_invalid_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule(expression, "UTC")


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus", "../../etc/passwd", "", " UTC", "Europe/Paris\x00", "posixrules", "localtime"],
)
def test_unknown_zones_are_refused(zone: str) -> None:
    with pytest.raises(CronError, match="fuseau horaire IANA inconnu"):
        CronSchedule("0 3 * * *", zone)
