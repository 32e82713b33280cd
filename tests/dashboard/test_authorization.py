"""The dashboard's routes that name a record, called by another account: each is refused
(403, as the API answers) and changes nothing, as ``tests/api/test_authorization.py``
checks for the API."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from backup_api.repositories import notifications
from backup_api.security import encrypt_secret
from tests.support.apphelpers import PASSWORD, Api, unique_name
from tests.support.sample_data import create_filled

ROUTES: list[tuple[str, str, dict[str, str] | None]] = [
    ("GET", "/databases/{database}", None),
    ("GET", "/databases/{database}/edit", None),
    ("GET", "/databases/{database}/retention/preview?keep_last=1", None),
    ("POST", "/databases/{database}/backups", {}),
    ("POST", "/databases/{database}/test", {}),
    ("POST", "/databases/{database}/edit", {"name": "pris par bob"}),
    ("POST", "/databases/{database}/delete", {}),
    ("POST", "/databases/{database}/schedule", {"cron": "* * * * *", "enabled": "on"}),
    ("POST", "/databases/{database}/schedule", {"action": "delete"}),
    ("POST", "/databases/{database}/retention", {"keep_last": "1"}),
    ("POST", "/databases/{database}/retention", {"action": "delete"}),
    ("GET", "/backups/{backup}", None),
    ("GET", "/backups/{backup}/status", None),
    ("GET", "/backups/{backup}/download", None),
    ("GET", "/backups/{backup}/restore", None),
    ("POST", "/backups/{backup}/verify", {}),
    ("POST", "/backups/{backup}/pin", {"pinned": "true"}),
    ("POST", "/backups/{backup}/delete", {}),
    ("POST", "/backups/{backup}/restore", {"database_id": "{bob_database}", "confirm": "x"}),
    # His own backup into her database.
    ("POST", "/backups/{bob_backup}/restore", {"database_id": "{database}", "confirm": "x"}),
    ("GET", "/restores/{restore}", None),
    ("GET", "/restores/{restore}/status", None),
    ("GET", "/storages/{storage}/edit", None),
    ("POST", "/storages/{storage}/test", {}),
    ("POST", "/storages/{storage}/edit", {"name": "pris par bob"}),
    ("POST", "/storages/{storage}/delete", {}),
    ("GET", "/notifications/{channel}", None),
    ("POST", "/notifications/{channel}/test", {}),
    ("POST", "/notifications/{channel}/edit", {"name": "pris par bob", "events": "backup.failed"}),
    ("POST", "/notifications/{channel}/enabled", {"enabled": "false"}),
    ("POST", "/notifications/{channel}/delete", {}),
]


async def _records(api: Api, database_id: int) -> list[Any]:
    return [
        (await api.get(path)).json()
        for path in (
            "/api/databases",
            "/api/backups",
            "/api/restores",
            "/api/storages",
            "/api/notifications",
            f"/api/databases/{database_id}/schedule",
            f"/api/databases/{database_id}/retention",
        )
    ]


async def _channel(app: FastAPI, owner_id: int) -> int:
    """A webhook of ``owner_id``'s, stored as the service stores one (its URL's host need
    not be reachable: nothing is sent to it)."""
    state = app.state.backup_api
    created = datetime.now(UTC)
    values = {
        "user_id": owner_id,
        "name": "Alertes d'Alice",
        "type": "webhook",
        "url_encrypted": encrypt_secret(state.keys, "https://hooks.example.com/alice?t=1"),
        "url_masked": "https://hooks.example.com/…",
        "secret_encrypted": encrypt_secret(state.keys, "whsec_AAAA"),
        "events": json.dumps(["backup.completed"]),
        "scope": "own",
        "enabled": True,
        "created_at": created,
        "updated_at": created,
    }
    channel = await state.metadata.write(lambda c: notifications.insert_channel(c, values))
    channel_id: int = channel.id
    return channel_id


async def test_another_account_is_refused_on_every_dashboard_route(
    app: FastAPI, client: httpx.AsyncClient, pg_server: Any
) -> None:
    alice = await Api(client).signup("alice@example.com")
    bob = await Api(client).signup("bob@example.com")
    source = unique_name("dash_authz")
    create_filled(pg_server, source)
    storage = await alice.post(
        "/api/storages",
        json={"name": "s3", "endpoint": "http://127.0.0.1:9", "bucket": "alice-backups"},
    )
    database = await alice.add_database(pg_server, source)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup
    response = await alice.post(
        f"/api/backups/{backup['id']}/restore",
        json={"database_id": database["id"], "confirm": source},
    )
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    await alice.put(f"/api/databases/{database['id']}/schedule", json={"cron": "0 3 * * *"})
    await alice.put(f"/api/databases/{database['id']}/retention", json={"keep_last": 5})
    bob_database = await bob.add_database(pg_server, source)
    bob_backup = await bob.wait_backup((await bob.start_backup(bob_database["id"]))["id"])
    ids = {
        "database": database["id"],
        "backup": backup["id"],
        "restore": restore["id"],
        "storage": storage.json()["storage"]["id"],
        "bob_database": bob_database["id"],
        "bob_backup": bob_backup["id"],
        "channel": await _channel(app, alice.user["id"]),
    }
    before = await _records(alice, database["id"])

    form = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', form.text)
    assert token
    signed_in = await client.post(
        "/login",
        data={"csrf_token": token.group(1), "email": "bob@example.com", "password": PASSWORD},
    )
    assert signed_in.status_code == 303
    page = await client.get("/")
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert csrf
    for method, template, data in ROUTES:
        path = template.format(**ids)
        if data is None:
            response = await client.request(method, path)
        else:
            fields = {key: value.format(**ids) for key, value in data.items()}
            response = await client.post(path, data={**fields, "csrf_token": csrf.group(1)})
        assert response.status_code == 403, (method, path, response.status_code)
        assert "Accès non autorisé" in response.text, (method, path)
        assert source not in response.text, (method, path)
        assert "Alertes d" not in response.text, (method, path)
    assert await _records(alice, database["id"]) == before
