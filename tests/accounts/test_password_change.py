"""PUT /auth/password: the current password checked (and throttled like a login), the rules
of registration for the new one, every earlier token of the account ended, the caller
handed a new one, personal API tokens revoked unless kept, and an audit trail without a
password in it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from backup_api.config import Settings
from tests.accounts.test_api_tokens import FakeClock, bearer, create_token
from tests.support.apphelpers import PASSWORD, Api, running_app

NEW_PASSWORD = "un-nouveau-mot-de-passe"


async def login_status(client: httpx.AsyncClient, password: str) -> int:
    body = {"email": "alice@example.com", "password": password}
    return (await client.post("/auth/login", json=body)).status_code


async def test_a_new_password_ends_every_earlier_token_and_hands_a_new_one(
    client: httpx.AsyncClient, alice: Api
) -> None:
    laptop = await Api(client).login("alice@example.com")
    # Both sessions have been seen (and their caller cached) before the change.
    for api in (alice, laptop):
        assert (await api.get("/api/databases")).status_code == 200
    response = await alice.put(
        "/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Mot de passe modifié avec succès"
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["revoked_api_tokens"] == 0
    for secret in (PASSWORD, NEW_PASSWORD, "argon2"):
        assert secret not in response.text

    for api in (alice, laptop):
        refused = await api.get("/api/databases")
        assert refused.status_code == 401
        assert refused.json() == {"error": "Token invalide ou expiré"}
    fresh = await client.get("/auth/me", headers=bearer(body["token"]))
    assert fresh.status_code == 200
    assert fresh.json()["user"]["email"] == "alice@example.com"
    assert await login_status(client, PASSWORD) == 401
    assert await login_status(client, NEW_PASSWORD) == 200


async def test_the_same_password_again_just_ends_the_other_sessions(
    client: httpx.AsyncClient, alice: Api
) -> None:
    other = await Api(client).login("alice@example.com")
    response = await alice.put(
        "/auth/password", json={"current_password": PASSWORD, "new_password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert (await other.get("/auth/me")).status_code == 401
    assert await login_status(client, PASSWORD) == 200


async def test_a_wrong_current_password_changes_nothing_and_is_throttled_like_a_login(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(login_max_failures=3, login_lockout_seconds=60)
    async with running_app(settings) as (app, client):
        clock = FakeClock()
        app.state.backup_api.throttle.clock = clock
        alice = await Api(client).signup("alice@example.com")
        wrong = {"current_password": "pas-le-bon-mot", "new_password": NEW_PASSWORD}
        for _ in range(3):
            response = await alice.put("/auth/password", json=wrong)
            assert response.status_code == 403
            assert response.json() == {"error": "Mot de passe actuel incorrect"}
            assert "www-authenticate" not in response.headers
        # The same counts as the login's: the right password is held back too, everywhere.
        right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        response = await alice.put("/auth/password", json=right)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0
        assert await login_status(client, PASSWORD) == 429
        # Nothing changed: the token works, the password is the old one.
        assert (await alice.get("/auth/me")).status_code == 200
        clock.now += 61
        assert await login_status(client, NEW_PASSWORD) == 401
        assert await login_status(client, PASSWORD) == 200
        response = await alice.put("/auth/password", json=right)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"current_password": PASSWORD, "new_password": "court"}, "new_password: au moins 8"),
        ({"current_password": PASSWORD, "new_password": "a\x00bcdefghi"}, "new_password: "),
        ({"current_password": PASSWORD, "new_password": "x" * 1025}, "new_password: au plus"),
        ({"current_password": PASSWORD}, "new_password: champ requis"),
        ({"new_password": NEW_PASSWORD}, "current_password: champ requis"),
        (
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "role": "admin"},
            "role: champ non autorisé",
        ),
        (
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "keep_api_tokens": 2},
            "keep_api_tokens: ",
        ),
    ],
)
async def test_the_new_password_follows_the_rules_of_registration(
    client: httpx.AsyncClient, alice: Api, body: dict[str, Any], message: str
) -> None:
    response = await alice.put("/auth/password", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"Données invalides: {message}")
    assert (await alice.get("/auth/me")).status_code == 200
    assert await login_status(client, PASSWORD) == 200


async def test_without_a_token_it_is_401(client: httpx.AsyncClient, alice: Api) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    response = await client.put("/auth/password", json=body)
    assert response.status_code == 401
    assert response.json() == {"error": "Authentification requise"}
    assert await login_status(client, PASSWORD) == 200


async def test_personal_tokens_are_revoked_unless_kept(
    client: httpx.AsyncClient, alice: Api
) -> None:
    _, first = await create_token(alice, name="ci")
    _, second = await create_token(alice, name="export")
    response = await alice.put(
        "/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.json()["revoked_api_tokens"] == 2
    alice.token = response.json()["token"]
    for secret in (first, second):
        assert (await client.get("/auth/me", headers=bearer(secret))).status_code == 401
    assert (await alice.get("/api/tokens")).json() == {"tokens": []}

    kept, secret = await create_token(alice, name="ci")
    response = await alice.put(
        "/auth/password",
        json={"current_password": NEW_PASSWORD, "new_password": PASSWORD, "keep_api_tokens": True},
    )
    assert response.status_code == 200, response.text
    assert response.json()["revoked_api_tokens"] == 0
    assert (await client.get("/auth/me", headers=bearer(secret))).status_code == 200
    alice.token = response.json()["token"]
    assert [t["id"] for t in (await alice.get("/api/tokens")).json()["tokens"]] == [kept["id"]]


async def test_password_changes_are_audited_without_passwords(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient, alice: Api
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="backup_api")
    await create_token(alice)
    wrong = {"current_password": "pas-le-bon-mot", "new_password": NEW_PASSWORD}
    assert (await alice.put("/auth/password", json=wrong)).status_code == 403
    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (await alice.put("/auth/password", json=right)).status_code == 200

    everything = caplog.text + repr([record.__dict__ for record in caplog.records])
    for secret in (PASSWORD, NEW_PASSWORD, "pas-le-bon-mot"):
        assert secret not in everything
    events = [record.__dict__["audit"] for record in caplog.records if hasattr(record, "audit")]
    changes = [e for e in events if e["action"] == "password_change"]
    assert [e["outcome"] for e in changes] == ["failure", "success"]
    assert {e["user_id"] for e in changes} == {alice.user["id"]}
    assert {e["client"] for e in changes} == {"203.0.113.7"}
    revoked = [e for e in events if e["action"] == "api_token_revoke"]
    assert len(revoked) == 1
    assert revoked[0]["reason"] == "password_change"
