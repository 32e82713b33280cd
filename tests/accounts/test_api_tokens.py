"""Personal API tokens: shown once, kept as a hash, usable as a bearer token with the owner's
current role, revoked at once, throttled, audited without their secret; and their
migration, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from backup_api.config import Settings
from backup_api.migrate import alembic_config
from tests.project.test_migration_backup_source import run_sql
from tests.support.apphelpers import Api, metadata_sql, running_app

INVALID_TOKEN = {"error": "Token invalide ou expiré"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def create_token(api: Api, **body: Any) -> tuple[dict[str, Any], str]:
    response = await api.post("/api/tokens", json={"name": "ci", **body})
    assert response.status_code == 201, response.text
    data = response.json()
    return data["token"], data["secret"]


def as_utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_token_is_shown_once_and_works_until_revoked(
    app: FastAPI, client: httpx.AsyncClient, alice: Api
) -> None:
    response = await alice.post("/api/tokens", json={"name": "ci", "expires_in_days": 30})
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == ["message", "token", "secret"]
    assert body["message"] == "Token créé avec succès"
    token, secret = body["token"], body["secret"]
    assert set(token) == {"id", "name", "created_at", "expires_at", "last_used_at"}
    assert token["name"] == "ci"
    assert token["last_used_at"] is None
    lifetime = as_utc(token["expires_at"]) - as_utc(token["created_at"])
    assert lifetime == timedelta(days=30)
    assert secret.startswith("bak_")
    assert len(secret) >= 40
    assert response.headers["cache-control"] == "no-store"

    # It acts as its owner on /api routes and /auth/me.
    me = await client.get("/auth/me", headers=bearer(secret))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "alice@example.com"
    created = await client.post(
        "/api/tokens", headers=alice.headers, json={"name": "second", "expires_in_days": None}
    )
    assert created.json()["token"]["expires_at"] is None
    listing = await client.get("/api/databases", headers=bearer(secret))
    assert listing.status_code == 200

    # Never shown again: not in the listing, nor in the item.
    for url in ("/api/tokens", f"/api/tokens/{token['id']}"):
        for headers in (alice.headers, bearer(secret)):
            response = await client.get(url, headers=headers)
            assert response.status_code == 200, response.text
            assert secret not in response.text
            assert secret[len("bak_") :] not in response.text
            assert "hash" not in response.text
    tokens = (await alice.get("/api/tokens")).json()["tokens"]
    assert [t["name"] for t in tokens] == ["ci", "second"]
    assert tokens[0]["last_used_at"] is not None
    assert (await alice.get("/api/tokens?limit=1&offset=1")).json()["tokens"] == [tokens[1]]

    # Stored as its SHA-256 only.
    rows = await metadata_sql(app, "SELECT * FROM api_tokens")
    assert secret not in repr(rows)
    assert hashlib.sha256(secret.encode()).hexdigest() in repr(rows)

    response = await alice.delete(f"/api/tokens/{token['id']}")
    assert response.status_code == 200
    assert response.json() == {"message": "Token révoqué avec succès"}
    refused = await client.get("/api/databases", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json() == INVALID_TOKEN
    assert refused.headers["www-authenticate"] == "Bearer"
    missing = await alice.get(f"/api/tokens/{token['id']}")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Token introuvable"}
    assert (await alice.delete(f"/api/tokens/{token['id']}")).status_code == 404
    # The owner's own session is untouched.
    assert (await alice.get("/auth/me")).status_code == 200


async def test_revocation_applies_to_the_very_next_request(
    app: FastAPI, client: httpx.AsyncClient, alice: Api
) -> None:
    """No cache keeps a token alive: not after many uses, and not when another process (or
    instance) revoked it directly in the metadata database."""
    token, secret = await create_token(alice)
    for _ in range(5):
        assert (await client.get("/auth/me", headers=bearer(secret))).status_code == 200
    assert (await client.delete(f"/api/tokens/{token['id']}", headers=bearer(secret))).json() == {
        "message": "Token révoqué avec succès"
    }
    assert (await client.get("/auth/me", headers=bearer(secret))).status_code == 401

    other, other_secret = await create_token(alice)
    for _ in range(5):
        assert (await client.get("/auth/me", headers=bearer(other_secret))).status_code == 200
    await metadata_sql(app, "DELETE FROM api_tokens WHERE id = :id", id=other["id"])
    assert (await client.get("/auth/me", headers=bearer(other_secret))).status_code == 401


async def test_unknown_and_expired_tokens_are_401(
    app: FastAPI, client: httpx.AsyncClient, alice: Api
) -> None:
    for secret in ("bak_" + "A" * 43, "bak_", "bak_x"):
        response = await client.get("/api/databases", headers=bearer(secret))
        assert response.status_code == 401, secret
        assert response.json() == INVALID_TOKEN
    token, secret = await create_token(alice, expires_in_days=1)
    assert (await client.get("/api/databases", headers=bearer(secret))).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    await metadata_sql(
        app, "UPDATE api_tokens SET expires_at = :t WHERE id = :id", t=past, id=token["id"]
    )
    response = await client.get("/api/databases", headers=bearer(secret))
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN
    # Still listed (with its expiry), so its owner sees why it stopped.
    listed = (await alice.get(f"/api/tokens/{token['id']}")).json()["token"]
    assert as_utc(listed["expires_at"]) <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "ci", "expires_in_days": 0}, "expires_in_days: valeur trop petite"),
        ({"name": "ci", "expires_in_days": 3651}, "expires_in_days: valeur trop grande"),
        ({"name": "ci", "expires_in_days": True}, "expires_in_days: entier attendu"),
        ({"name": "ci", "expires_in_days": "demain"}, "expires_in_days: entier attendu"),
        ({"name": ""}, "name: au moins 1 caractères"),
        ({"name": "   "}, "name: ne doit pas être vide"),
        ({"name": "x" * 101}, "name: au plus 100 caractères"),
        ({}, "name: champ requis"),
        ({"name": "ci", "user_id": 1}, "user_id: champ non autorisé"),
    ],
)
async def test_bad_token_requests_are_400_and_create_nothing(
    alice: Api, body: dict[str, Any], message: str
) -> None:
    response = await alice.post("/api/tokens", json=body)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": f"Données invalides: {message}"}
    assert (await alice.get("/api/tokens")).json() == {"tokens": []}


async def test_the_maximum_lifetime_is_accepted(alice: Api) -> None:
    token, _ = await create_token(alice, expires_in_days=3650)
    lifetime = as_utc(token["expires_at"]) - as_utc(token["created_at"])
    assert lifetime == timedelta(days=3650)


async def test_a_token_acts_with_its_owners_current_role(
    client: httpx.AsyncClient, settings_factory: Callable[..., Settings]
) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    _, secret = await create_token(alice)
    assert (await client.get("/api/users", headers=bearer(secret))).status_code == 403
    promoted = await admin.put(f"/api/users/{alice.user['id']}/role", json={"role": "admin"})
    assert promoted.status_code == 200
    # The role change ends alice's sessions, not her personal token: it now acts as an admin.
    assert (await alice.get("/auth/me")).status_code == 401
    assert (await client.get("/api/users", headers=bearer(secret))).status_code == 200
    await admin.put(f"/api/users/{alice.user['id']}/role", json={"role": "user"})
    assert (await client.get("/api/users", headers=bearer(secret))).status_code == 403
    # Deleting the account ends its tokens.
    assert (await admin.delete(f"/api/users/{alice.user['id']}")).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(secret))).status_code == 401


async def test_a_personal_token_cannot_create_tokens(client: httpx.AsyncClient, alice: Api) -> None:
    """A leaked token must not outlive its own revocation by minting others."""
    token, secret = await create_token(alice)
    response = await client.post("/api/tokens", headers=bearer(secret), json={"name": "more"})
    assert response.status_code == 403
    assert response.json() == {
        "error": "Un token d'API ne peut pas créer d'autre token: connectez-vous avec votre "
        "mot de passe"
    }
    assert [t["id"] for t in (await alice.get("/api/tokens")).json()["tokens"]] == [token["id"]]


async def test_creation_is_throttled_per_account_and_capped(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(api_token_creations_per_hour=3, max_api_tokens_per_user=4)
    async with running_app(settings) as (app, client):
        clock = FakeClock()
        app.state.backup_api.token_creations.clock = clock
        alice = await Api(client).signup("alice@example.com")
        bob = await Api(client).signup("bob@example.com")
        for _ in range(3):
            await create_token(alice)
        response = await alice.post("/api/tokens", json={"name": "ci"})
        assert response.status_code == 429
        assert response.json() == {"error": "Trop de tokens créés récemment, réessayez plus tard"}
        assert 0 < int(response.headers["retry-after"]) <= 3600
        # Per account: bob is not held back by alice.
        await create_token(bob)
        clock.now += 3600
        token, _ = await create_token(alice)
        # Four held: the cap, whatever the rate.
        response = await alice.post("/api/tokens", json={"name": "ci"})
        assert response.status_code == 409
        assert response.json() == {
            "error": "Nombre maximal de tokens atteint (4): révoquez-en avant d'en créer"
        }
        assert (await alice.delete(f"/api/tokens/{token['id']}")).status_code == 200
        await create_token(alice)


async def test_secrets_never_reach_the_log_and_events_are_audited(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient, alice: Api
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="backup_api")
    token, secret = await create_token(alice)
    assert (await client.get("/auth/me", headers=bearer(secret))).status_code == 200
    assert (await client.post("/api/tokens", headers=bearer(secret), json={"name": "x"})).is_error
    await alice.delete(f"/api/tokens/{token['id']}")
    assert (await client.get("/auth/me", headers=bearer(secret))).status_code == 401
    wrong = "bak_" + "Z" * 43
    assert (await client.get("/auth/me", headers=bearer(wrong))).status_code == 401

    everything = caplog.text + repr([record.__dict__ for record in caplog.records])
    for value in (secret, secret[len("bak_") :], wrong[len("bak_") :]):
        assert value not in everything
    events = [record.__dict__["audit"] for record in caplog.records if hasattr(record, "audit")]
    by_action = {(e["action"], e["outcome"]): e for e in events}
    alice_id = alice.user["id"]
    assert by_action[("api_token_create", "success")]["user_id"] == alice_id
    assert by_action[("api_token_create", "success")]["target_id"] == token["id"]
    assert by_action[("api_token_revoke", "success")]["target_id"] == token["id"]
    failures = [e for e in events if e["action"] == "api_token_use"]
    assert [e["reason"] for e in failures] == ["unknown", "unknown"]
    assert {e["client"] for e in failures} == {"203.0.113.7"}
    assert all(e["outcome"] == "failure" for e in failures)


def test_api_tokens_migration_goes_up_and_down(metadata_url: str) -> None:
    config = alembic_config(metadata_url)
    before = ScriptDirectory.from_config(config).get_revision("0005_api_tokens").down_revision
    assert before == "0004_tool_versions"
    command.upgrade(config, before)
    run_sql(
        metadata_url,
        [
            "INSERT INTO users (id, email, password_hash, role, token_key, created_at,"
            " updated_at) VALUES (1, 'a@example.com', 'x', 'user', 'k', '2026-01-01',"
            " '2026-01-01')"
        ],
    )
    command.upgrade(config, "0005_api_tokens")
    insert = (
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES"
        " (1, 'ci', '{}', '2026-01-01')"
    )
    run_sql(metadata_url, [insert.format("a" * 64), insert.format("b" * 64)])
    assert run_sql(metadata_url, ["SELECT id, user_id FROM api_tokens ORDER BY id"]) == [
        [(1, 1), (2, 1)]
    ]
    # The hash is unique, and a deleted token's id is never handed out again.
    with pytest.raises(IntegrityError):
        run_sql(metadata_url, [insert.format("a" * 64)])
    run_sql(metadata_url, ["DELETE FROM api_tokens WHERE id = 2", insert.format("c" * 64)])
    (ids,) = run_sql(metadata_url, ["SELECT id FROM api_tokens ORDER BY id"])
    assert ids[0] == (1,)
    assert ids[1][0] > 2
    command.downgrade(config, before)
    tables = run_sql(
        metadata_url,
        [
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            if metadata_url.startswith("sqlite")
            else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ],
    )[0]
    assert ("api_tokens",) not in tables
    assert ("users",) in tables
    command.upgrade(config, "head")
