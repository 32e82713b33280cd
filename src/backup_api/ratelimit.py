"""A per-key sliding-window limit, for requests that make the service open connections.

A connection test (``POST /api/databases/{id}/test``) makes the service connect wherever
the caller's database points, and costs a tool process: without a limit, one account
could turn it into a port scanner or a way to hold the job threads. In memory (the service
is a single process); ``clock`` (monotonic seconds) is injectable for tests.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

_MAX_KEYS = 100_000


class RateLimiter:
    """At most ``max_calls`` accepted calls per key within any ``window_seconds``."""

    def __init__(
        self,
        max_calls: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_calls = max_calls
        self.window = window_seconds
        self.clock = clock
        self._calls: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def acquire(self, key: Hashable) -> int:
        """Count a call for ``key`` and return 0, or return the seconds to wait (nothing
        counted: a refused call does not push the next accepted one further away)."""
        now = self.clock()
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = deque()
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        if len(calls) >= self.max_calls:
            return max(1, math.ceil(calls[0] + self.window - now))
        calls.append(now)
        self._calls.move_to_end(key)
        while len(self._calls) > _MAX_KEYS:
            self._calls.popitem(last=False)
        return 0
