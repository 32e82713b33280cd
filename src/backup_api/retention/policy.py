"""The retention decision, as a pure function of a database's history.

``plan`` is the one place the rules live: the preview shows its result, the sweep deletes
what it says to delete, so a preview is exactly what the next sweep does.

Rules (grandfather-father-son, as restic's ``forget``):

- only ``completed`` backups count; a history of failures never erodes what is kept;
- ``keep_last`` keeps the n newest completed backups; ``keep_hourly`` ... ``keep_yearly``
  keep the newest completed backup of each of the n newest hours, days, ISO weeks, months
  and years that hold one, in the database's zone: counted back from the newest completed
  backup, never from now;
- the rules are independent (a backup kept by ``keep_last`` still counts for its day), and
  a backup is kept when any rule keeps it;
- a policy without any rule (every count 0, no ``max_age_days``) removes nothing, as
  restic's ``forget`` without a policy;
- ``max_age_days`` (measured from now) deletes older backups whatever the ``keep_*`` rules
  say (they still count them when picking each bucket's newest); alone, it keeps
  everything younger;
- never deleted, whatever the policy: the newest completed backup, any backup younger
  than an hour, a pinned one, a pending or running one;
- failed records (they have no file) are removed once older than ``failed_max_age``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

#: Nothing this young is ever deleted: it may be the one a user is about to download.
MIN_AGE = timedelta(hours=1)

COMPLETED = "completed"
FAILED = "failed"
PENDING = "pending"


@dataclass(frozen=True)
class Policy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    max_age_days: int | None = None

    @property
    def has_keep_rule(self) -> bool:
        return any(count > 0 for _, count, _ in self.buckets()) or self.keep_last > 0

    def buckets(self) -> list[tuple[str, int, Callable[[datetime], tuple[int, ...]]]]:
        """The calendar rules: reason, count, bucket of a local time."""
        return [
            # ``fold`` tells the two 01:00-02:00 of a fall-back night apart: hours elapse.
            ("hourly", self.keep_hourly, lambda t: (t.year, t.month, t.day, t.hour, t.fold)),
            ("daily", self.keep_daily, lambda t: (t.year, t.month, t.day)),
            ("weekly", self.keep_weekly, lambda t: tuple(t.isocalendar()[:2])),
            ("monthly", self.keep_monthly, lambda t: (t.year, t.month)),
            ("yearly", self.keep_yearly, lambda t: (t.year,)),
        ]


@dataclass(frozen=True)
class Record:
    """What the decision needs to know of one backup record."""

    id: int
    status: str
    created_at: datetime
    pinned: bool = False
    started: bool = False


@dataclass(frozen=True)
class Kept:
    backup_id: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Doomed:
    backup_id: int
    created_at: datetime
    reason: str


@dataclass(frozen=True)
class Plan:
    keep: tuple[Kept, ...]
    delete: tuple[Doomed, ...]


def _utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _newest_first(records: Iterable[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (_utc(r.created_at), r.id), reverse=True)


def _rule_reasons(completed: list[Record], policy: Policy, zone: ZoneInfo) -> dict[int, list[str]]:
    """The ``keep_*`` rules' verdicts on completed backups, newest first."""
    reasons: dict[int, list[str]] = {r.id: [] for r in completed}
    for record in completed[: policy.keep_last]:
        reasons[record.id].append("last")
    for reason, count, bucket_of in policy.buckets():
        seen: set[tuple[int, ...]] = set()
        for record in completed:
            if len(seen) >= count:
                break
            bucket = bucket_of(_utc(record.created_at).astimezone(zone))
            if bucket not in seen:
                # Newest first: the first backup met in a bucket is its newest.
                seen.add(bucket)
                reasons[record.id].append(reason)
    return reasons


def plan(
    history: Iterable[Record],
    policy: Policy | None,
    now: datetime,
    zone: ZoneInfo,
    failed_max_age: timedelta,
) -> Plan:
    """What to keep (and why) and what to delete (and why) among one database's records.

    ``policy`` None, or one without any rule, keeps every backup (failed records still
    expire).
    """
    if policy is not None and not policy.has_keep_rule and policy.max_age_days is None:
        policy = None  # no rule at all: as restic's forget, nothing is removed
    now = _utc(now)
    records = _newest_first(history)
    completed = [r for r in records if r.status == COMPLETED]
    newest = completed[0].id if completed else None
    rules = _rule_reasons(completed, policy, zone) if policy is not None else {}
    keep: list[Kept] = []
    delete: list[Doomed] = []
    for record in records:
        age = now - _utc(record.created_at)
        guarantees = []
        if record.id == newest:
            guarantees.append("newest")
        if record.pinned:
            guarantees.append("pinned")
        if age < MIN_AGE:
            guarantees.append("young")
        if record.status == PENDING:
            guarantees.append("running" if record.started else "pending")
        if record.status == FAILED:
            if guarantees:
                keep.append(Kept(record.id, tuple(guarantees)))
            elif age > failed_max_age:
                delete.append(Doomed(record.id, record.created_at, "failed"))
            else:
                keep.append(Kept(record.id, ("failed",)))
            continue
        if record.status != COMPLETED:
            # An unknown status is not ours to judge: kept.
            keep.append(Kept(record.id, (*guarantees, record.status)))
            continue
        if policy is None:
            keep.append(Kept(record.id, (*guarantees, "no_policy")))
            continue
        expired = policy.max_age_days is not None and age > timedelta(days=policy.max_age_days)
        if expired:
            reasons = []
        elif policy.has_keep_rule:
            reasons = rules[record.id]
        else:
            reasons = ["max_age"]
        if guarantees or reasons:
            keep.append(Kept(record.id, (*guarantees, *reasons)))
        else:
            delete.append(Doomed(record.id, record.created_at, "max_age" if expired else "policy"))
    return Plan(keep=tuple(keep), delete=tuple(delete))
