"""Accounts: ids never reused, tokens bound to their account, one first admin, one spelling
of an address."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
from alembic import command
from sqlalchemy import Connection, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from backup_api import migrate
from backup_api.models import User, new_token_key, utcnow
from tests.support.apphelpers import PASSWORD, Api, make_settings, metadata_sql, running_app


async def test_a_deleted_accounts_token_never_reaches_the_next_account(
    metadata_url: str, tmp_path: Path
) -> None:
    """The sequence the review ran: an admin deletes the newest account, someone registers;
    the deleted account's token, still within its lifetime, must not act as the newcomer."""
    async with running_app(make_settings(tmp_path, database_url=metadata_url)) as (_, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        await Api(client).signup("early@example.com")
        gone = await Api(client).signup("gone@example.com")
        assert (await gone.get("/auth/me")).status_code == 200
        assert (await admin.delete(f"/api/users/{gone.user['id']}")).status_code == 200
        newcomer = await Api(client).signup("next@example.com")
        assert newcomer.user["id"] > gone.user["id"]
        for url in ("/auth/me", "/api/databases", "/api/backups"):
            assert (await gone.get(url)).status_code == 401, url
        assert (await newcomer.get("/auth/me")).json()["user"]["email"] == "next@example.com"


async def test_a_token_names_its_account_even_if_an_id_came_back(tmp_path: Path) -> None:
    """Should a row ever get a deleted account's id again (a restored metadata dump, a
    database without AUTOINCREMENT), the old token still does not fit it: its key differs."""
    async with running_app(make_settings(tmp_path)) as (app, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        gone = await Api(client).signup("gone@example.com")
        assert (await admin.delete(f"/api/users/{gone.user['id']}")).status_code == 200
        now = utcnow()
        row = {
            "id": gone.user["id"],
            "email": "same-id@example.com",
            "password_hash": "x",
            "role": "user",
            "token_key": new_token_key(),
            "created_at": now,
            "updated_at": now,
        }
        await metadata_sql(app, insert(User.__table__).values(**row))  # type: ignore[attr-defined]
        assert (await gone.get("/auth/me")).status_code == 401
        assert (await gone.get("/api/databases")).status_code == 401


async def test_tokens_carry_a_per_account_key_that_is_never_shown(
    client: httpx.AsyncClient,
) -> None:
    first = await Api(client).signup("one@example.com")
    second = await Api(client).signup("two@example.com")
    keys = [
        jwt.decode(api.token or "", options={"verify_signature": False})["key"]
        for api in (first, second)
    ]
    assert len(set(keys)) == 2
    assert all(len(key) >= 40 for key in keys)
    # Logging in again gives a token with the same key: earlier tokens stay valid.
    again = await Api(client).login("one@example.com")
    assert jwt.decode(again.token or "", options={"verify_signature": False})["key"] == keys[0]
    assert (await first.get("/auth/me")).status_code == 200
    for response in (await first.get("/auth/me"), await again.client.get("/health")):
        assert keys[0] not in response.text


async def test_rotating_the_key_ends_older_tokens_at_once(tmp_path: Path) -> None:
    """``rotate_token_key`` is what a password change calls: the caller cache must not let an
    older token through."""
    from backup_api.services import users as users_service

    async with running_app(make_settings(tmp_path)) as (app, client):
        user = await Api(client).signup("rotate@example.com")
        assert (await user.get("/auth/me")).status_code == 200  # now cached
        state = app.state.backup_api
        await users_service.rotate_token_key(
            metadata=state.metadata, principals=state.principals, user_id=user.user["id"]
        )
        assert (await user.get("/auth/me")).status_code == 401
        fresh = await Api(client).login("rotate@example.com")
        assert (await fresh.get("/auth/me")).status_code == 200


async def test_only_one_of_concurrent_first_registrations_becomes_admin(
    metadata_url: str, tmp_path: Path
) -> None:
    """Six requests for the admin role on a fresh instance, at once and through two
    service instances sharing the metadata database (as two processes would)."""
    settings = make_settings(tmp_path, database_url=metadata_url)
    async with running_app(settings) as (_, one), running_app(settings) as (_, two):
        bodies = [
            {"email": f"admin{index}@example.com", "password": PASSWORD, "role": "admin"}
            for index in range(6)
        ]
        clients = [one, two] * 3
        responses = await asyncio.gather(
            *(c.post("/auth/register", json=body) for c, body in zip(clients, bodies, strict=True))
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201, 403, 403, 403, 403, 403], [r.text for r in responses]
        for response in responses:
            if response.status_code == 403:
                assert response.json() == {
                    "error": "Seul un administrateur peut créer un compte administrateur"
                }
        (winner,) = [r.json()["user"]["email"] for r in responses if r.status_code == 201]
        admin = await Api(one).login(winner)
        users = (await admin.get("/api/users")).json()["users"]
        assert [(u["email"], u["role"]) for u in users] == [(winner, "admin")]
        # Later self-registrations as admin stay refused, even once the admin is gone.
        later = {"email": "late@example.com", "password": PASSWORD, "role": "admin"}
        assert (await two.post("/auth/register", json=later)).status_code == 403


async def test_create_admin_takes_the_first_admin_step(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
    env.update(
        {
            "BACKUP_API_DATABASE_URL": settings.database_url,
            "BACKUP_API_SECRETS_DIR": str(settings.secrets_dir),
            "BACKUP_API_ADMIN_PASSWORD": PASSWORD,
        }
    )
    command_line = [sys.executable, "-m", "backup_api.cli", "create-admin", "ops@example.com"]
    subprocess.run(command_line, env=env, check=True, capture_output=True)
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            steps = (await connection.execute(text("SELECT step FROM bootstrap"))).all()
    finally:
        await engine.dispose()
    assert steps == [("first_admin",)]


async def test_emails_are_compared_after_nfkc(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_app(settings) as (_, client):
        alice = await Api(client).signup("alice@example.com")
        twin = {"email": "\uff41lice@example.com", "password": PASSWORD}
        response = await client.post("/auth/register", json=twin)
        assert response.status_code == 409, response.text
        wide = "\uff21\uff2c\uff29\uff23\uff25@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"
        login = await client.post("/auth/login", json={"email": wide, "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert login.json()["user"]["id"] == alice.user["id"]
        # Registered in a compatibility form, stored in the plain one.
        created = await client.post(
            "/auth/register", json={"email": "\uff42ob@example.com", "password": PASSWORD}
        )
        assert created.json()["user"]["email"] == "bob@example.com"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
    env.update(
        {
            "BACKUP_API_DATABASE_URL": settings.database_url,
            "BACKUP_API_SECRETS_DIR": str(settings.secrets_dir),
            "BACKUP_API_ADMIN_PASSWORD": PASSWORD,
        }
    )
    command_line = [sys.executable, "-m", "backup_api.cli", "create-admin", twin["email"]]
    made = subprocess.run(command_line, env=env, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    async with running_app(settings) as (_, client):
        admin = await Api(client).login("alice@example.com")
        users = (await admin.get("/api/users")).json()["users"]
    assert sorted((u["email"], u["role"]) for u in users) == [
        ("alice@example.com", "admin"),
        ("bob@example.com", "user"),
    ]


# --------------------------------------------------------------------------- migration


def _upgrade_to(revision: str) -> Any:
    def work(connection: Connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return work


_ROWS = [
    "INSERT INTO users (id, email, password_hash, role, created_at, updated_at) VALUES "
    "(1, 'root@example.com', 'h', 'admin', :now, :now), "
    "(2, 'owner@example.com', 'h', 'user', :now, :now), "
    "(3, 'gone@example.com', 'h', 'user', :now, :now)",
    "INSERT INTO databases (id, name, type, host, port, username, password_encrypted, "
    "db_name, user_id, created_at, updated_at) VALUES "
    "(4, 'n', 'postgresql', 'h', '5432', 'u', 'p', 'd', 2, :now, :now)",
    "INSERT INTO backups (id, filename, filepath, size, status, db_type, db_name, user_id, "
    "database_id, created_at, updated_at) VALUES "
    "(5, 'f.zip', 'db/backups/postgresql/f.zip', 1, 'completed', 'postgresql', 'd', 2, 4, "
    ":now, :now)",
    "INSERT INTO restores (id, backup_id, database_id, status, user_id, created_at, "
    "updated_at) VALUES (6, 5, 4, 'completed', 2, :now, :now)",
    "DELETE FROM users WHERE id = 3",
]


async def test_migration_keeps_every_row_and_stops_id_reuse(
    metadata_url: str, tmp_path: Path
) -> None:
    """An instance created before: its rows (children of the recreated tables included)
    survive, every account gets its own key, and the newest deleted id stays unused."""
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    engine = create_async_engine(metadata_url)
    try:
        async with engine.connect() as connection:
            await migrate.run_unconstrained(connection, _upgrade_to("0001_initial"))
        async with engine.begin() as connection:
            for statement in _ROWS:
                await connection.execute(text(statement), {"now": now})
        await migrate.upgrade(engine)
        async with engine.connect() as connection:

            async def rows(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(row) for row in (await connection.execute(text(sql))).all()]

            users = await rows("SELECT id, email, role, token_key FROM users ORDER BY id")
            assert [row[:3] for row in users] == [
                (1, "root@example.com", "admin"),
                (2, "owner@example.com", "user"),
            ]
            assert len({row[3] for row in users}) == 2
            assert all(row[3] for row in users)
            assert await rows("SELECT id, user_id FROM databases") == [(4, 2)]
            assert await rows("SELECT id, user_id, database_id FROM backups") == [(5, 2, 4)]
            assert await rows("SELECT id, backup_id, database_id FROM restores") == [(6, 5, 4)]
            assert await rows("SELECT step FROM bootstrap") == [("first_admin",)]
            if connection.dialect.name == "sqlite":
                assert await rows("PRAGMA foreign_keys") == [(1,)]
                tables = await rows("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
                for name, sql in tables:
                    if name in {"users", "databases", "backups", "restores"}:
                        assert "AUTOINCREMENT" in sql, name
                # The foreign keys still act: deleting the owner removes their records.
                await connection.execute(text("DELETE FROM users WHERE id = 2"))
                assert await rows("SELECT id FROM databases") == []
                await connection.rollback()
        async with running_app(make_settings(tmp_path, database_url=metadata_url)) as (_, c):
            newcomer = await Api(c).signup("next@example.com")
        # On SQLite the sequence restarts from the largest id kept (2), so 3 is handed out
        # once more here; the key makes 3's old tokens useless (see the test above). From
        # now on, no id is reused.
        assert newcomer.user["id"] >= 3
    finally:
        await engine.dispose()
