"""The auth caches: callers (expiry, bound, switched off) and verified tokens."""

from __future__ import annotations

import time

import pytest

from backup_api.principals import Principal, PrincipalCache
from backup_api.security import InvalidTokenError, VerifiedTokens, create_access_token


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


def test_verified_tokens_expire_even_when_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s" * 40
    token = create_access_token(7, secret, expire_minutes=1, token_key="k")
    tokens = VerifiedTokens(secret)
    assert tokens.decode(token).user_id == 7
    assert tokens.decode(token).user_id == 7  # from the cache
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidTokenError):
        tokens.decode(token)


def test_verified_tokens_never_admit_a_bad_signature() -> None:
    tokens = VerifiedTokens("s" * 40)
    forged = create_access_token(7, "t" * 40, expire_minutes=5, token_key="k")
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            tokens.decode(forged)
    good = create_access_token(7, "s" * 40, expire_minutes=5, token_key="k")
    assert tokens.decode(good).user_id == 7
    with pytest.raises(InvalidTokenError):
        tokens.decode(good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
