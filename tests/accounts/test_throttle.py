"""Login throttling: guessing is slowed, the owner is not locked out by a stranger."""

from __future__ import annotations

from pathlib import Path

import httpx

from backup_api.ratelimit import RateLimiter
from backup_api.throttle import LoginThrottle
from tests.support.apphelpers import PASSWORD, Api, make_settings, running_app

OWNER = "owner@example.com"
HOME = "198.51.100.10"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, max_failures: int = 5) -> LoginThrottle:
    return LoginThrottle(max_failures, window_seconds=900, lockout_seconds=300, clock=clock)


def test_a_stranger_cannot_lock_the_owner_out_of_a_known_address() -> None:
    clock = Clock()
    limits = throttle(clock)
    limits.record_success(OWNER, HOME)
    for _ in range(5):
        assert limits.retry_after(OWNER, "203.0.113.1") == 0
        limits.record_failure(OWNER, "203.0.113.1")
    assert limits.retry_after(OWNER, "203.0.113.1") == 300
    # Guesses from many more addresses, two a second: the account backs off, so few of them
    # are even tried.
    tried = 0
    for index in range(2, 40):
        clock.now += 0.5
        address = f"203.0.113.{index}"
        if limits.retry_after(OWNER, address) == 0:
            limits.record_failure(OWNER, address)
            tried += 1
    assert tried == 4  # after 1, 2, 4 and 8 seconds
    assert limits.retry_after(OWNER, HOME) == 0
    assert limits.retry_after(OWNER, "192.0.2.50") > 0  # an address never seen succeed


def test_the_account_backoff_doubles_up_to_the_lockout_and_then_expires() -> None:
    clock = Clock()
    limits = throttle(clock)
    waits = []
    for index in range(14):
        address = f"203.0.113.{index}"
        wait = limits.retry_after(OWNER, address)
        waits.append(wait)
        clock.now += wait
        assert limits.retry_after(OWNER, address) == 0
        limits.record_failure(OWNER, address)
    assert waits == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert limits.retry_after(OWNER, "192.0.2.1") == 300
    # Failures older than the window no longer count.
    clock.now += 901
    assert limits.retry_after(OWNER, "192.0.2.1") == 0


def test_failures_from_one_address_lock_that_address_for_that_account() -> None:
    clock = Clock()
    limits = throttle(clock, max_failures=3)
    limits.record_success(OWNER, HOME)
    for _ in range(3):
        limits.record_failure(OWNER, HOME)
    # Known or not, an address that guessed wrong this often waits.
    assert limits.retry_after(OWNER, HOME) == 300
    assert limits.retry_after("other@example.com", HOME) == 0
    clock.now += 300
    assert limits.retry_after(OWNER, HOME) == 0


def test_one_address_trying_many_accounts_is_locked_out() -> None:
    clock = Clock()
    limits = throttle(clock, max_failures=3)
    for index in range(12):
        assert limits.retry_after(f"spray{index}@example.com", "203.0.113.9") == 0
        limits.record_failure(f"spray{index}@example.com", "203.0.113.9")
    assert limits.retry_after("fresh@example.com", "203.0.113.9") == 300
    assert limits.retry_after("fresh@example.com", "203.0.113.10") == 0


def test_success_forgives_the_owners_own_mistakes() -> None:
    clock = Clock()
    limits = throttle(clock, max_failures=3)
    for _ in range(2):
        limits.record_failure(OWNER, HOME)
    limits.record_success(OWNER, HOME)
    for _ in range(2):
        limits.record_failure(OWNER, HOME)
    assert limits.retry_after(OWNER, HOME) == 0


async def test_bad_passwords_from_elsewhere_do_not_lock_the_owner_out(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, login_max_failures=5, login_lockout_seconds=300)
    async with running_app(settings) as (app, attacker_client):
        home = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(HOME, 5000)),
            base_url="http://testserver",
        )
        async with home:
            owner = await Api(home).signup(OWNER)
            wrong = {"email": OWNER, "password": "wrong-password"}
            for _ in range(5):
                response = await attacker_client.post("/auth/login", json=wrong)
                assert response.status_code == 401
            right = {"email": OWNER, "password": PASSWORD}
            # The guessing address is held off, even with the right password...
            assert (await attacker_client.post("/auth/login", json=right)).status_code == 429
            # ...the owner, from where they logged in before, is not.
            again = await home.post("/auth/login", json=right)
            assert again.status_code == 200, again.text
            assert again.json()["user"]["id"] == owner.user["id"]


def test_rate_limit_slides_per_key() -> None:
    clock = Clock()
    limit = RateLimiter(3, window_seconds=3600, clock=clock)
    for _ in range(3):
        assert limit.acquire("alice") == 0
        clock.now += 100
    # Events at 1000, 1100, 1200; now 1300: the first leaves the window at 4600.
    assert limit.acquire("alice") == 3300
    # A refused attempt is not counted, and other keys have their own count.
    assert limit.acquire("alice") == 3300
    assert limit.acquire("bob") == 0
    clock.now = 4600
    assert limit.acquire("alice") == 0
    # Only the oldest left: the next waits for the second (1100 + 3600).
    assert limit.acquire("alice") == 100


async def test_a_lockout_ends_after_its_time(tmp_path: Path) -> None:
    """Through the API, on the service's own throttle driven by a clock of the test's."""
    settings = make_settings(tmp_path, login_max_failures=3, login_lockout_seconds=60)
    async with running_app(settings) as (app, client):
        clock = Clock()
        app.state.backup_api.throttle.clock = clock
        await Api(client).signup(OWNER)
        wrong = {"email": OWNER, "password": "wrong-password"}
        right = {"email": OWNER, "password": PASSWORD}
        for _ in range(3):
            assert (await client.post("/auth/login", json=wrong)).status_code == 401
        locked = await client.post("/auth/login", json=right)
        assert locked.status_code == 429
        assert locked.headers["retry-after"] == "60"
        assert locked.json() == {"error": "Trop de tentatives, réessayez plus tard"}
        clock.now += 59
        still = await client.post("/auth/login", json=right)
        assert still.status_code == 429
        assert still.headers["retry-after"] == "1"
        clock.now += 1
        response = await client.post("/auth/login", json=right)
        assert response.status_code == 200, response.text
        assert response.json()["user"]["email"] == OWNER
