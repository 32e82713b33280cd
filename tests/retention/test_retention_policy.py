"""The retention decision against an independent, deliberately plain reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from backup_api.retention.policy import Plan, Policy, Record, plan
from backup_api.retention.zone import retention_zone

FAILED_AGE = timedelta(days=30)
HOUR = timedelta(hours=1)
ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",  # a half-hour offset
    "Australia/Lord_Howe",  # a half-hour daylight-saving shift
    "Pacific/Chatham",
]
START = datetime(2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- reference


def _hour_start(when: datetime, zone: ZoneInfo) -> datetime:
    # The instant the local hour began: two wall-clock 01:30 of a fall-back night are
    # different hours (``fold`` survives ``replace``).
    local = when.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _monday(when: datetime, zone: ZoneInfo) -> object:
    day = when.astimezone(zone).date()
    return day - timedelta(days=day.weekday())


BUCKETS = {
    "hourly": _hour_start,
    "daily": lambda when, zone: when.astimezone(zone).date(),
    "weekly": _monday,
    "monthly": lambda when, zone: when.astimezone(zone).strftime("%Y-%m"),
    "yearly": lambda when, zone: when.astimezone(zone).year,
}


def reference(
    records: list[Record], policy: Policy | None, now: datetime, zone: ZoneInfo
) -> set[int]:
    """The ids to keep, computed the plain way."""
    completed = [r for r in records if r.status == "completed"]

    def order(record: Record) -> tuple[datetime, int]:
        return (record.created_at, record.id)

    kept: set[int] = set()
    if completed:
        kept.add(max(completed, key=order).id)
    for record in records:
        if record.pinned or now - record.created_at < HOUR or record.status == "pending":
            kept.add(record.id)
        if record.status == "failed" and now - record.created_at <= FAILED_AGE:
            kept.add(record.id)
    if policy is None:
        return kept | {r.id for r in completed}

    by_rules: set[int] = set()
    if policy.keep_last:
        by_rules |= {r.id for r in sorted(completed, key=order, reverse=True)[: policy.keep_last]}
    counts = {
        "hourly": policy.keep_hourly,
        "daily": policy.keep_daily,
        "weekly": policy.keep_weekly,
        "monthly": policy.keep_monthly,
        "yearly": policy.keep_yearly,
    }
    for name, count in counts.items():
        groups: dict[object, list[Record]] = {}
        for record in completed:
            groups.setdefault(BUCKETS[name](record.created_at, zone), []).append(record)
        newest_of_each = sorted((max(g, key=order) for g in groups.values()), key=order)
        by_rules |= {r.id for r in newest_of_each[::-1][:count]}
    if not any(counts.values()) and not policy.keep_last:
        by_rules = {r.id for r in completed}  # max_age_days alone
    if policy.max_age_days is not None:
        limit = timedelta(days=policy.max_age_days)
        by_rules = {r.id for r in completed if r.id in by_rules and now - r.created_at <= limit}
    return kept | by_rules


# --------------------------------------------------------------------------- strategies


@st.composite
def histories(draw: st.DrawFn) -> list[Record]:
    count = draw(st.integers(min_value=0, max_value=40))
    minutes = st.integers(min_value=0, max_value=3 * 365 * 24 * 60)
    records = []
    for backup_id in range(1, count + 1):
        # Often close together, so that buckets hold several backups.
        offset = draw(st.one_of(minutes, st.integers(min_value=0, max_value=72 * 60)))
        records.append(
            Record(
                id=backup_id,
                status=draw(st.sampled_from(["completed", "completed", "failed", "pending"])),
                created_at=START + timedelta(minutes=offset),
                pinned=draw(st.booleans()) and draw(st.booleans()),
                started=draw(st.booleans()),
            )
        )
    return records


counts = st.integers(min_value=0, max_value=6)
policies = st.one_of(
    st.none(),
    st.builds(
        Policy,
        keep_last=counts,
        keep_hourly=counts,
        keep_daily=counts,
        keep_weekly=counts,
        keep_monthly=counts,
        keep_yearly=counts,
        max_age_days=st.one_of(st.none(), st.integers(min_value=1, max_value=800)),
    ),
)


def _now(draw: st.DrawFn, records: list[Record]) -> datetime:
    latest = max((r.created_at for r in records), default=START)
    return latest + timedelta(minutes=draw(st.integers(min_value=-180, max_value=400 * 24 * 60)))


def _ids(plan_: Plan) -> tuple[set[int], set[int]]:
    return {k.backup_id for k in plan_.keep}, {d.backup_id for d in plan_.delete}


# --------------------------------------------------------------------------- properties


@settings(max_examples=400, deadline=None)
@given(st.data(), histories(), policies, st.sampled_from(ZONES))
def test_matches_reference_and_keeps_the_guarantees(
    data: st.DataObject, records: list[Record], policy: Policy | None, zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    now = _now(data.draw, records)
    result = plan(records, policy, now, zone, FAILED_AGE)
    kept, deleted = _ids(result)

    assert kept | deleted == {r.id for r in records}
    assert not kept & deleted
    assert kept == reference(records, policy, now, zone)
    completed = [r for r in records if r.status == "completed"]
    if completed:
        assert max(completed, key=lambda r: (r.created_at, r.id)).id in kept
    for record in records:
        if record.pinned or record.status == "pending" or now - record.created_at < HOUR:
            assert record.id in kept, record
    for item in result.keep:
        assert item.reasons, item
    # Ordered newest first, as the preview shows them.
    times = {r.id: (r.created_at, r.id) for r in records}
    ordered = [times[k.backup_id] for k in result.keep]
    assert ordered == sorted(ordered, reverse=True)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=30),
    policies.filter(lambda p: p is not None),
    st.integers(min_value=0, max_value=2000),
    st.sampled_from(ZONES),
)
def test_failures_since_the_last_success_never_lose_it(
    failures: int, policy: Policy | None, days_later: int, zone_name: str
) -> None:
    success = Record(id=1, status="completed", created_at=START)
    older = [
        Record(id=10 + n, status="completed", created_at=START - timedelta(days=n + 1))
        for n in range(5)
    ]
    failed = [
        Record(id=100 + n, status="failed", created_at=START + timedelta(hours=n + 1))
        for n in range(failures)
    ]
    now = START + timedelta(days=days_later, hours=failures + 2)
    result = plan([success, *older, *failed], policy, now, ZoneInfo(zone_name), FAILED_AGE)
    kept, _ = _ids(result)
    assert 1 in kept
    assert "newest" in next(k.reasons for k in result.keep if k.backup_id == 1)


# --------------------------------------------------------------------------- cases


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _completed(*moments: str) -> list[Record]:
    return [Record(id=n, status="completed", created_at=_at(m)) for n, m in enumerate(moments, 1)]


def test_days_are_cut_in_the_schedule_zone() -> None:
    # 23:30 and 00:30 in Paris (winter, UTC+1): two days there, one day in UTC.
    records = _completed("2026-03-28T22:30:00+00:00", "2026-03-28T23:30:00+00:00")
    now = _at("2026-04-10T12:00:00+00:00")
    paris = plan(records, Policy(keep_daily=2), now, ZoneInfo("Europe/Paris"), FAILED_AGE)
    utc = plan(records, Policy(keep_daily=2), now, ZoneInfo("UTC"), FAILED_AGE)
    assert _ids(paris) == ({1, 2}, set())
    assert _ids(utc) == ({2}, {1})


def test_fall_back_night_has_two_hours_between_two_and_three() -> None:
    # 02:30 summer time, then 02:30 winter time an hour later: two hours elapsed.
    records = _completed("2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+00:00")
    now = _at("2026-10-26T12:00:00+00:00")
    result = plan(records, Policy(keep_hourly=2), now, ZoneInfo("Europe/Paris"), FAILED_AGE)
    assert _ids(result) == ({1, 2}, set())
    # Yet the same day: one daily bucket.
    result = plan(records, Policy(keep_daily=5), now, ZoneInfo("Europe/Paris"), FAILED_AGE)
    assert _ids(result) == ({2}, {1})


def test_spring_forward_day_is_one_day() -> None:
    # 01:30 and 03:30 Paris time on the 23-hour day: one daily bucket, two hourly ones.
    records = _completed("2026-03-29T00:30:00+00:00", "2026-03-29T01:30:00+00:00")
    now = _at("2026-04-10T12:00:00+00:00")
    zone = ZoneInfo("Europe/Paris")
    assert _ids(plan(records, Policy(keep_daily=7), now, zone, FAILED_AGE)) == ({2}, {1})
    assert _ids(plan(records, Policy(keep_hourly=7), now, zone, FAILED_AGE)) == ({1, 2}, set())


def test_iso_weeks_and_rules_are_independent() -> None:
    # Sunday 2026-01-04 is in ISO week 1 of 2026, Monday 2025-12-29 too; 2025-12-28 is
    # week 52 of 2025.
    records = _completed(
        "2025-12-28T12:00:00+00:00", "2025-12-29T12:00:00+00:00", "2026-01-04T12:00:00+00:00"
    )
    now = _at("2026-01-20T12:00:00+00:00")
    result = plan(records, Policy(keep_weekly=2, keep_last=1), now, ZoneInfo("UTC"), FAILED_AGE)
    reasons = {k.backup_id: set(k.reasons) for k in result.keep}
    # keep_last took the newest, which still counts for its week.
    assert reasons == {3: {"newest", "last", "weekly"}, 1: {"weekly"}}
    assert {d.backup_id: d.reason for d in result.delete} == {2: "policy"}


def test_max_age_overrides_rules_but_not_guarantees() -> None:
    records = [
        *_completed("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"),
        Record(id=3, status="completed", created_at=_at("2025-06-01T00:00:00+00:00"), pinned=True),
    ]
    now = _at("2026-06-01T00:00:00+00:00")
    result = plan(records, Policy(keep_daily=10, max_age_days=30), now, ZoneInfo("UTC"), FAILED_AGE)
    assert _ids(result) == ({2, 3}, {1})
    assert result.delete[0].reason == "max_age"


def test_failed_records_expire_and_anchor_nothing() -> None:
    records = [
        *_completed("2026-01-01T00:00:00+00:00"),
        Record(id=2, status="failed", created_at=_at("2026-01-05T00:00:00+00:00")),
        Record(id=3, status="failed", created_at=_at("2026-02-20T00:00:00+00:00")),
    ]
    now = _at("2026-03-01T00:00:00+00:00")
    result = plan(records, None, now, ZoneInfo("UTC"), FAILED_AGE)
    assert {k.backup_id: k.reasons for k in result.keep} == {
        3: ("failed",),
        1: ("newest", "no_policy"),
    }
    assert [(d.backup_id, d.reason) for d in result.delete] == [(2, "failed")]


def test_zone_is_the_schedules_when_there_is_one() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        # No schedules at all: UTC.
        assert retention_zone(connection, 1) == ZoneInfo("UTC")
        connection.execute(text("CREATE TABLE schedules (database_id INTEGER, timezone TEXT)"))
        connection.execute(
            text("INSERT INTO schedules VALUES (1, 'Europe/Paris'), (2, 'Nowhere/Land')")
        )
        assert retention_zone(connection, 1) == ZoneInfo("Europe/Paris")
        # An unknown zone, no schedule for the database, or no database: UTC.
        assert retention_zone(connection, 2) == ZoneInfo("UTC")
        assert retention_zone(connection, 3) == ZoneInfo("UTC")
        assert retention_zone(connection, None) == ZoneInfo("UTC")
    engine.dispose()
