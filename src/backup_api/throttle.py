"""Login throttling that slows guessing without letting a stranger lock the owner out.

Three counts, each over a sliding window:

- per account and client address: ``max_failures`` failures lock that pair out for
  ``lockout`` seconds (the owner's own typing mistakes, or one address guessing);
- per client address, all accounts together: four times as many (several users may share
  a NAT) lock the address out;
- per account, from every address: past ``max_failures`` failures, each further attempt
  waits for a back-off that doubles with every failure up to ``lockout``. It slows guessing
  spread over many addresses, and does not apply to an address this account logged in from
  before, so a stranger's failures never keep the owner out from where they usually are.

Known-good addresses are remembered in memory (the service is a single process), a few per
account; a restart forgets them.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_CLIENT_FACTOR = 4
_KNOWN_PER_ACCOUNT = 16
_MAX_ENTRIES = 100_000


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    """In-memory counts; ``clock`` (monotonic seconds) is injectable for tests."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self.lockout = lockout_seconds
        self.clock = clock
        self._pairs: dict[tuple[str, str | None], _Record] = {}
        self._clients: dict[str, _Record] = {}
        self._accounts: dict[str, _Record] = {}
        self._known: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    def retry_after(self, email: str, client: str | None) -> int:
        """Seconds to wait before an attempt for ``email`` from ``client`` is accepted."""
        now = self.clock()
        locks = [self._pairs.get((email, client))]
        if client is not None:
            locks.append(self._clients.get(client))
        wait = max((r.locked_until - now for r in locks if r is not None), default=0.0)
        if not self.is_known(email, client):
            wait = max(wait, self._backoff_until(email, now) - now)
        return max(0, math.ceil(wait))

    def is_known(self, email: str, client: str | None) -> bool:
        known = self._known.get(email)
        return client is not None and known is not None and client in known

    def record_failure(self, email: str, client: str | None) -> None:
        now = self.clock()
        self._count(self._pairs.setdefault((email, client), _Record()), now, self.max_failures)
        if client is not None:
            limit = self.max_failures * _CLIENT_FACTOR
            self._count(self._clients.setdefault(client, _Record()), now, limit)
        account = self._accounts.setdefault(email, _Record())
        account.failures.append(now)
        self._expire(account, now)
        self._prune(now)

    def record_success(self, email: str, client: str | None) -> None:
        """The owner's own mistakes from this address are forgiven, and the address is
        remembered as theirs. The account's count stays: a stranger's guesses are not."""
        self._pairs.pop((email, client), None)
        if client is None:
            return
        known = self._known.setdefault(email, OrderedDict())
        known[client] = None
        known.move_to_end(client)
        while len(known) > _KNOWN_PER_ACCOUNT:
            known.popitem(last=False)
        self._known.move_to_end(email)
        while len(self._known) > _MAX_ENTRIES:
            self._known.popitem(last=False)

    def _backoff_until(self, email: str, now: float) -> float:
        account = self._accounts.get(email)
        if account is None:
            return 0.0
        self._expire(account, now)
        excess = len(account.failures) - self.max_failures
        if excess < 0:
            return 0.0
        # 1 s after the max_failures-th failure, then 2, 4, 8... up to the lockout.
        delay = min(float(self.lockout), 2.0 ** min(excess, 32))
        return account.failures[-1] + delay

    def _count(self, record: _Record, now: float, limit: int) -> None:
        record.failures.append(now)
        self._expire(record, now)
        if len(record.failures) >= limit:
            record.locked_until = now + self.lockout
            record.failures.clear()

    def _expire(self, record: _Record, now: float) -> None:
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()

    def _prune(self, now: float) -> None:
        _drop_stale(self._pairs, now, self.window)
        _drop_stale(self._clients, now, self.window)
        _drop_stale(self._accounts, now, self.window)


def _drop_stale(table: dict[Any, _Record], now: float, window: float) -> None:
    if len(table) < _MAX_ENTRIES // 10:
        return
    stale = [
        key
        for key, record in table.items()
        if record.locked_until <= now
        and (not record.failures or record.failures[-1] <= now - window)
    ]
    for key in stale:
        del table[key]
