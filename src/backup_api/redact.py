"""Scrubbing of secrets from text that leaves the process (logs, error messages)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"


def _variants(secret: str) -> set[str]:
    # The tools may echo a password quoted or URL-encoded; hide every spelling we can predict.
    forms = {secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]}
    return {form for form in forms if len(form) >= 3}


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if not secret:
            continue
        for form in sorted(_variants(secret), key=len, reverse=True):
            text = text.replace(form, MASK)
    return text


class SecretRegistry:
    """Passwords currently in use by jobs; the log filter hides them from every record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, secret: str) -> None:
        if len(secret) < 3:
            return
        with self._lock:
            self._counts[secret] = self._counts.get(secret, 0) + 1

    def remove(self, secret: str) -> None:
        with self._lock:
            count = self._counts.get(secret, 0) - 1
            if count <= 0:
                self._counts.pop(secret, None)
            else:
                self._counts[secret] = count

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._counts)


live_secrets = SecretRegistry()


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with every live secret masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = live_secrets.snapshot()
        if not secrets:
            return True
        message = record.getMessage()
        cleaned = scrub(message, secrets)
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            cleaned_exc = scrub(formatted, secrets)
            if cleaned_exc != formatted:
                record.exc_info = None
                record.exc_text = cleaned_exc
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
