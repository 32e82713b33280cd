"""Cron expressions in a time zone: when the next run of a schedule is.

``cronsim`` does the calendar work, with Debian cron's daylight-saving rules: an
expression with a fixed minute and hour (``30 2 * * *``) follows the wall clock, so on a
spring-forward day a time in the gap runs once at the first minute after it, and on a
fall-back day an ambiguous time runs once (at its first occurrence); an expression whose
minute or hour field is a wildcard (``0 * * * *``, ``*/15 * * * *``) follows elapsed time.
This module adds what the schedules need on top: the ``@`` shortcuts, five fields only,
French messages, and answers that are always strictly later than the instant asked about
(cronsim works on the naive wall clock for fixed-time expressions, so from inside a
repeated hour it may name an earlier instant).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

SHORTCUTS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}

# Enough to step over the instants a naive wall-clock answer can repeat (one hour of a
# fall-back day holds at most 60 minute slots), with room to spare.
_MAX_STEPS = 1000


NEVER = "cette expression ne désigne aucune date"
UNKNOWN_ZONE = "fuseau horaire IANA inconnu (par exemple Europe/Paris, UTC)"


class CronError(ValueError):
    """An expression or a zone that cannot be used; the message is French."""


@cache
def known_zones() -> frozenset[str]:
    """The IANA names the service accepts: the system's zones and the ``tzdata`` package's,
    less the files that only look like zones (the machine's own ``localtime``, tzdata's
    ``Factory`` placeholder)."""
    return frozenset(available_timezones()) - {"localtime", "Factory"}


def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Paris``, ``UTC``)."""
    if name not in known_zones():
        raise CronError(UNKNOWN_ZONE)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(UNKNOWN_ZONE) from None


_FIELD = r"[0-9A-Za-z*/,#?-]+"
#: The shape of an expression (what the API's schema states; each field's ranges are
#: checked by cronsim). Spaces and tabs only, as the schema's regex dialect reads them.
EXPRESSION_PATTERN = (
    r"^[ \t]*(?:@(?:hourly|daily|weekly|monthly)|"
    + _FIELD
    + r"(?:[ \t]+"
    + _FIELD
    + r"){4})[ \t]*$"
)
_SHAPE = re.compile(EXPRESSION_PATTERN)


def normalize_expression(expression: str) -> str:
    """The five-field form of ``expression``; ``CronError`` when it is not one cron reads."""
    text = " ".join(expression.split())
    if text.startswith("@") and text not in SHORTCUTS:
        raise CronError(
            "raccourci inconnu (acceptés: " + ", ".join(SHORTCUTS) + ")",
        )
    if not _SHAPE.fullmatch(expression):
        raise CronError("cinq champs attendus (minute heure jour mois jour-de-semaine)")
    text = SHORTCUTS.get(text, text)
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise CronError(f"expression cron invalide ({_french(str(exc))})") from None
    except StopIteration:
        raise CronError(NEVER) from None
    return text


def _french(reason: str) -> str:
    names = {
        "minute": "minute",
        "hour": "heure",
        "day-of-month": "jour du mois",
        "month": "mois",
        "day-of-week": "jour de la semaine",
    }
    for english, french in names.items():
        if reason.lower() == f"bad {english}":
            return f"{french} invalide"
    return "syntaxe invalide"


class CronSchedule:
    """A valid expression in a zone."""

    def __init__(self, expression: str, zone: str) -> None:
        self.expression = normalize_expression(expression)
        self.zone = parse_zone(zone)

    def next_after(self, instant: datetime) -> datetime:
        """The first run strictly after ``instant`` (aware), in UTC."""
        after = instant.astimezone(UTC)
        iterator = CronSim(self.expression, after.astimezone(self.zone))
        for _ in range(_MAX_STEPS):
            try:
                candidate = next(iterator).astimezone(UTC)
            except StopIteration:
                break
            if candidate > after:
                return candidate.replace(microsecond=0)
        raise CronError(NEVER)
