"""Who is calling: the authenticated account as the request path needs it, and a cache of it.

Every authenticated request used to load its user row before doing its own work; on SQLite
that lookup costs as much as the request itself (each statement is a thread hop through
aiosqlite). The caller's id, role and token key change only through this process (role
change, deletion, new token key: each ``forget``s the entry after its commit) or, rarely,
through the ``create-admin`` command of another process, which only ever adds rights and
changes the key; a short time to live bounds how long such an outside change goes unseen,
and a token whose key differs from the cached one is checked against the row at once.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from backup_api.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an account's id, role and token key, immutable and shared between
    requests; ``api_token_id`` when the caller came with a personal API token (never
    cached: see ``services.api_tokens``)."""

    id: int
    role: str
    token_key: str = field(default="", repr=False, compare=False)
    api_token_id: int | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    def holds(self, token_key: str) -> bool:
        """Whether a token carrying ``token_key`` is this account's current one."""
        return bool(self.token_key) and hmac.compare_digest(
            self.token_key.encode(), token_key.encode()
        )


class PrincipalCache:
    """user id -> Principal, each entry kept at most ``ttl`` seconds, at most ``size`` entries."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[int, tuple[float, Principal]] = OrderedDict()

    def get(self, user_id: int) -> Principal | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        expires, principal = entry
        if time.monotonic() >= expires:
            del self._entries[user_id]
            return None
        return principal

    def put(self, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        self._entries[principal.id] = (time.monotonic() + self.ttl, principal)
        self._entries.move_to_end(principal.id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)
