"""Accounts and tokens: hashing, JWT attacks, mass assignment, throttling, admin routes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.support.apphelpers import PASSWORD, Api, make_settings, metadata_sql, running_app


async def test_passwords_are_argon2_hashes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_app(settings) as (app, client):
        await Api(client).signup("hash@example.com")
        # Read as stored, on whichever metadata database the suite runs.
        [(stored,)] = await metadata_sql(app, "SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_and_misplaced_tokens_are_401(app: FastAPI, alice: Api) -> None:
    secret = app.state.backup_api.keys.jwt_secret
    now = int(time.time())
    assert alice.token is not None
    key = jwt.decode(alice.token, options={"verify_signature": False})["key"]
    claims = {
        "sub": str(alice.user["id"]),
        "iat": now,
        "exp": now + 600,
        "typ": "access",
        "key": key,
    }
    forged = {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        "wrong key": jwt.encode(claims, "another-secret-that-is-long-enough-0123", "HS256"),
        "HS512": jwt.encode(claims, secret, algorithm="HS512"),
        "expired": jwt.encode({**claims, "exp": now - 10}, secret, algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, "HS256"),
        "bad sub": jwt.encode({**claims, "sub": "abc"}, secret, algorithm="HS256"),
        "no key": jwt.encode({k: v for k, v in claims.items() if k != "key"}, secret, "HS256"),
        "other key": jwt.encode({**claims, "key": "x" + key[1:]}, secret, algorithm="HS256"),
        "garbage": "not.a.token",
    }
    for name, token in forged.items():
        response = await alice.client.get(
            "/api/databases", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, name
        assert list(response.json()) == ["error"]
        assert response.headers["www-authenticate"] == "Bearer"
    valid = jwt.encode(claims, secret, algorithm="HS256")
    assert (
        await alice.client.get("/api/databases", headers={"Authorization": f"Bearer {valid}"})
    ).status_code == 200
    for query in (f"?token={alice.token}", f"?access_token={alice.token}"):
        assert (await alice.client.get("/api/databases" + query)).status_code == 401
    basic = base64.b64encode(f"alice@example.com:{PASSWORD}".encode()).decode()
    response = await alice.client.get("/api/databases", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401


async def test_token_of_a_deleted_user_is_401(client: httpx.AsyncClient) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    victim = await Api(client).signup("gone@example.com")
    # The victim's account is in the caller cache when it is deleted: it must not outlive it.
    assert (await victim.get("/api/backups")).status_code == 200
    assert (await admin.delete(f"/api/users/{victim.user['id']}")).status_code == 200
    assert (await victim.get("/api/backups")).status_code == 401
    assert (await victim.get(f"/api/backups/{1}")).status_code == 401


async def test_role_changes_end_the_tokens_issued_before(client: httpx.AsyncClient) -> None:
    root = await Api(client).signup("root@example.com", role="admin")
    other = await Api(client).signup("other@example.com")
    assert (await other.get("/api/users")).status_code == 403
    promoted = await root.put(f"/api/users/{other.user['id']}/role", json={"role": "admin"})
    assert promoted.status_code == 200, promoted.text
    # The token issued while a plain user ends (it was in the caller cache); a new login
    # carries the new role.
    assert (await other.get("/api/backups")).status_code == 401
    await other.login("other@example.com")
    assert (await other.get("/api/users")).status_code == 200
    # Setting the role it already has changes nothing.
    same = await root.put(f"/api/users/{other.user['id']}/role", json={"role": "admin"})
    assert same.status_code == 200
    assert (await other.get("/api/users")).status_code == 200
    demoted = await root.put(f"/api/users/{other.user['id']}/role", json={"role": "user"})
    assert demoted.status_code == 200, demoted.text
    assert (await other.get("/api/users")).status_code == 401
    await other.login("other@example.com")
    assert (await other.get("/api/users")).status_code == 403
    assert (await other.get("/api/backups")).status_code == 200
    # The admin who made the changes kept their own token.
    assert (await root.get("/api/users")).status_code == 200


async def test_outside_role_changes_are_seen_within_the_cache_lifetime(tmp_path: Path) -> None:
    """A promotion written by another process (``create-admin``, which also sets a new
    password) is not announced to the running service: the token issued before ends once
    the cached caller expires (``auth_cache_seconds``), and a new login is an admin's."""
    settings = make_settings(tmp_path, auth_cache_seconds=0.5)
    async with running_app(settings) as (_, client):
        await Api(client).signup("first@example.com", role="admin")
        ops = await Api(client).signup("ops@example.com")
        assert (await ops.get("/api/users")).status_code == 403
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
        env.update(
            {
                "BACKUP_API_DATABASE_URL": settings.database_url,
                "BACKUP_API_SECRETS_DIR": str(settings.secrets_dir),
                "BACKUP_API_ADMIN_PASSWORD": PASSWORD,
            }
        )
        command = [sys.executable, "-m", "backup_api.cli", "create-admin", "ops@example.com"]
        began = time.monotonic()
        await asyncio.to_thread(subprocess.run, command, env=env, check=True, capture_output=True)
        # A new token works at once, though the old key may still be cached.
        fresh = await Api(client).login("ops@example.com")
        assert fresh.user["role"] == "admin"
        assert (await fresh.get("/api/users")).status_code == 200
        # The old one ends at the latest once the cached entry expires (it may already have).
        await asyncio.sleep(max(0.0, 0.6 - (time.monotonic() - began)))
        assert (await ops.get("/api/users")).status_code == 401


async def test_closed_registration(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, allow_registration=False)) as (_, client):
        admin = await Api(client).signup("first@example.com", role="admin")
        body = {"email": "second@example.com", "password": PASSWORD}
        response = await client.post("/auth/register", json=body)
        assert response.status_code == 403
        assert response.json() == {"error": "Les inscriptions sont fermées"}
        response = await admin.post("/auth/register", json=body)
        assert response.status_code == 201


def test_create_admin_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
    env["BACKUP_API_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'meta.sqlite3'}"
    env["BACKUP_API_SECRETS_DIR"] = str(tmp_path / "secrets")
    command = [sys.executable, "-m", "backup_api.cli", "create-admin"]
    # The password is never an argument (it would show in ps).
    refused = subprocess.run(
        [*command, "ops@example.com", "--password", PASSWORD],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode != 0
    made = subprocess.run(
        [*command, "Ops@Example.com"],
        env={**env, "BACKUP_API_ADMIN_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "ops@example.com" in made.stdout
    with sqlite3.connect(tmp_path / "meta.sqlite3") as connection:
        rows = connection.execute("SELECT email, role FROM users").fetchall()
    assert rows == [("ops@example.com", "admin")]


async def test_create_admin_account_logs_in_as_admin(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
    env.update(
        {
            "BACKUP_API_DATABASE_URL": settings.database_url,
            "BACKUP_API_SECRETS_DIR": str(settings.secrets_dir),
            "BACKUP_API_ADMIN_PASSWORD": PASSWORD,
        }
    )
    subprocess.run(
        [sys.executable, "-m", "backup_api.cli", "create-admin", "ops@example.com"],
        env=env,
        check=True,
        capture_output=True,
    )
    async with running_app(settings) as (_, client):
        response = await client.post(
            "/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
        )
        assert response.json()["user"]["role"] == "admin"


async def test_login_throttling_per_email_and_per_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, login_max_failures=3, login_lockout_seconds=60)
    async with running_app(settings) as (_, client):
        await Api(client).signup("target@example.com")
        wrong = {"email": "target@example.com", "password": "wrong-password"}
        for _ in range(3):
            assert (await client.post("/auth/login", json=wrong)).status_code == 401
        response = await client.post("/auth/login", json=wrong)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0
        assert list(response.json()) == ["error"]
        # Locked even with the right password, and whatever the case of the address.
        right = {"email": "TARGET@example.com", "password": PASSWORD}
        assert (await client.post("/auth/login", json=right)).status_code == 429

    settings = make_settings(tmp_path / "by-address", login_max_failures=3)
    async with running_app(settings) as (_, client):
        statuses = []
        for index in range(13):
            body = {"email": f"spray{index}@example.com", "password": "wrong-password"}
            statuses.append((await client.post("/auth/login", json=body)).status_code)
        assert statuses[:12] == [401] * 12
        assert statuses[12] == 429


async def test_unknown_email_and_wrong_password_look_alike(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both failures do the same work: one Argon2 verification with the same parameters
    (an unknown e-mail is checked against a dummy hash), so they take the same time. The
    work is counted rather than timed: a count does not vary with the machine's load."""
    import argon2._password_hasher as argon2_hasher

    real_verify = argon2_hasher.verify_secret
    verified: list[tuple[bytes, int]] = []

    def counting_verify(hash: bytes, secret: bytes, type: Any) -> Any:
        # Kept: the variant, version and cost parameters, and the encoded salt+hash length.
        _, variant, version, params, salt, digest = hash.split(b"$")
        verified.append((b"$".join((variant, version, params)), len(salt) + len(digest)))
        return real_verify(hash, secret, type)

    await Api(client).signup("known@example.com")
    monkeypatch.setattr(argon2_hasher, "verify_secret", counting_verify)

    async def attempt(email: str) -> tuple[list[tuple[bytes, int]], httpx.Response]:
        verified.clear()
        response = await client.post("/auth/login", json={"email": email, "password": "nope-nope"})
        return list(verified), response

    known_work, known = await attempt("known@example.com")
    unknown_work, unknown = await attempt("ghost@example.com")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json() == {"error": "Email ou mot de passe incorrect"}
    assert len(known_work) == 1
    assert unknown_work == known_work, "an unknown e-mail skips or changes the Argon2 work"
    assert known_work[0][0].startswith(b"argon2id$")


async def test_every_admin_route_denies_by_default(app: FastAPI, alice: Api) -> None:
    admin_routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/users")
        for method in operations
    ]
    assert len(admin_routes) >= 4
    for method, path in admin_routes:
        url = path.replace("{user_id}", str(alice.user["id"]))
        body = {"role": "admin"} if method == "PUT" else None
        assert (await alice.request(method, url, json=body)).status_code == 403, (method, url)
        assert (await alice.client.request(method, url, json=body)).status_code == 401
    assert (await alice.get("/auth/me")).json()["user"]["role"] == "user"


@pytest.mark.parametrize(
    "field", ["user_id", "status", "filepath", "size", "id", "password_encrypted"]
)
async def test_mass_assignment_is_refused(alice: Api, field: str) -> None:
    body = {
        "name": "x",
        "type": "postgresql",
        "host": "localhost",
        "port": 5432,
        "username": "u",
        "password": "p",
        "db_name": "d",
        field: 99,
    }
    response = await alice.post("/api/databases", json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert (await alice.get("/api/databases")).json()["databases"] == []
    response = await alice.post(
        "/auth/register", json={"email": "m@example.com", "password": PASSWORD, field: 1}
    )
    assert response.status_code == 400
