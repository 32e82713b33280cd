"""Login throttling: too many failures for one email or one client address -> 429."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    """In-memory sliding window; one instance per process (the service is single-process)."""

    def __init__(self, max_failures: int, window_seconds: float, lockout_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self.lockout = lockout_seconds
        self._records: dict[str, _Record] = {}

    def _keys(self, email: str, client: str | None) -> list[str]:
        keys = [f"email:{email.strip().lower()}"]
        if client:
            keys.append(f"client:{client}")
        return keys

    def retry_after(self, email: str, client: str | None) -> int:
        """Seconds to wait before another attempt is accepted (0 if allowed now)."""
        now = time.monotonic()
        wait = 0.0
        for key in self._keys(email, client):
            record = self._records.get(key)
            if record is not None and record.locked_until > now:
                wait = max(wait, record.locked_until - now)
        return math.ceil(wait)

    def record_failure(self, email: str, client: str | None) -> None:
        now = time.monotonic()
        # Per address, allow more failures than per email: several users may share a NAT.
        for key in self._keys(email, client):
            limit = self.max_failures * (4 if key.startswith("client:") else 1)
            record = self._records.setdefault(key, _Record())
            record.failures.append(now)
            while record.failures and record.failures[0] < now - self.window:
                record.failures.popleft()
            if len(record.failures) >= limit:
                record.locked_until = now + self.lockout
                record.failures.clear()
        self._prune(now)

    def record_success(self, email: str) -> None:
        self._records.pop(f"email:{email.strip().lower()}", None)

    def _prune(self, now: float) -> None:
        if len(self._records) < 10000:
            return
        stale = [
            key
            for key, record in self._records.items()
            if record.locked_until < now
            and (not record.failures or record.failures[-1] < now - self.window)
        ]
        for key in stale:
            del self._records[key]
