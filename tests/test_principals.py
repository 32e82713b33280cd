"""The caller cache: expiry, bound, and switched off."""

from __future__ import annotations

import time

import pytest

from backup_api.principals import Principal, PrincipalCache


def test_entries_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = PrincipalCache(ttl=10)
    cache.put(Principal(id=1, role="admin"))
    assert cache.get(1) == Principal(id=1, role="admin")
    now[0] += 9.9
    assert cache.get(1) is not None
    now[0] += 0.2
    assert cache.get(1) is None


def test_forget_and_bound() -> None:
    cache = PrincipalCache(ttl=60, size=3)
    for user_id in range(1, 6):
        cache.put(Principal(id=user_id, role="user"))
    assert [cache.get(i) is not None for i in range(1, 6)] == [False, False, True, True, True]
    cache.forget(4)
    assert cache.get(4) is None
    assert cache.get(5) == Principal(id=5, role="user")


def test_zero_lifetime_disables_it() -> None:
    cache = PrincipalCache(ttl=0)
    cache.put(Principal(id=1, role="user"))
    assert cache.get(1) is None


def test_principal_roles() -> None:
    assert Principal(id=1, role="admin").is_admin
    assert not Principal(id=2, role="user").is_admin
