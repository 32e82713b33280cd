"""The audit trail through the real API: an entry for each kind of action (who, from
where, on what, how it ended), kept in the metadata database, read by admins only through
``GET /api/audit`` with its filters and pages; a deleted account's entries stay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from backup_api.config import Settings
from backup_api.models import AuditEvent
from tests.support.apphelpers import PASSWORD, Api, metadata_sql, running_app, unique_name
from tests.support.sample_data import create_filled

CLIENT = "203.0.113.7"  # the address the test transport gives every request
STORAGE_SECRET = "wJalrXUtnFEMI/K7MDENG/audit-Secret!42"
CHANNEL_TOKEN = "canal-jeton-secret-audit"
NEW_PASSWORD = "un-tout-nouveau-mot-de-passe"


async def trail(admin: Api, **params: Any) -> list[dict[str, Any]]:
    response = await admin.get("/api/audit", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["audit"]
    return entries


def find(
    entries: list[dict[str, Any]], action: str, outcome: str = "success", **fields: Any
) -> dict[str, Any]:
    """The newest entry of ``action`` with ``outcome`` and ``fields``; fails when none."""
    wanted = {"action": action, "outcome": outcome, **fields}
    for entry in entries:
        if all(entry.get(key) == value for key, value in wanted.items()):
            return entry
    raise AssertionError(f"no {action}/{outcome} entry with {fields} in {entries}")


async def test_every_kind_of_action_is_in_the_trail(
    settings_factory: Callable[..., Settings], pg_server: Any
) -> None:
    settings = settings_factory(login_max_failures=2, allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (_, client):
        root = await Api(client).signup("root@example.com", role="admin")
        alice = await Api(client).signup("alice@example.com")
        bob = await Api(client).signup("bob@example.com")
        root_id, alice_id, bob_id = root.user["id"], alice.user["id"], bob.user["id"]

        # Logins that fail, one that is throttled (the account's limit is 2 failures).
        wrong = {"email": "bob@example.com", "password": "pas-le-bon-mot"}
        assert (await client.post("/auth/login", json=wrong)).status_code == 401
        unknown = {"email": "nobody@example.com", "password": "pas-le-bon-mot"}
        assert (await client.post("/auth/login", json=unknown)).status_code == 401
        assert (await client.post("/auth/login", json=wrong)).status_code == 401
        right = {"email": "bob@example.com", "password": PASSWORD}
        assert (await client.post("/auth/login", json=right)).status_code == 429

        # A database and what hangs on it.
        source = unique_name("audit")
        create_filled(pg_server, source)
        database = await alice.add_database(pg_server, source)
        database_id = database["id"]
        url = f"/api/databases/{database_id}"
        assert (await alice.put(url, json={"name": "renommée"})).status_code == 200
        schedule = await alice.put(f"{url}/schedule", json={"cron": "0 3 * * *"})
        assert schedule.status_code == 200, schedule.text
        assert (await alice.delete(f"{url}/schedule")).status_code == 200
        retention = await alice.put(f"{url}/retention", json={"keep_last": 3})
        assert retention.status_code == 200, retention.text
        assert (await alice.delete(f"{url}/retention")).status_code == 200

        # A storage.
        body = {
            "name": "s3",
            "endpoint": "http://127.0.0.1:9",
            "bucket": "alice-backups",
            "secret_access_key": STORAGE_SECRET,
        }
        response = await alice.post("/api/storages", json=body)
        assert response.status_code == 201, response.text
        storage_id = response.json()["storage"]["id"]
        storage_url = f"/api/storages/{storage_id}"
        assert (await alice.put(storage_url, json={"name": "minio"})).status_code == 200
        assert (await alice.delete(storage_url)).status_code == 200

        # A notification channel (its URL and secret never in the trail).
        channel = {
            "name": "alertes",
            "type": "webhook",
            "url": f"http://127.0.0.1:9/hook?token={CHANNEL_TOKEN}",
            "events": ["backup.failed"],
        }
        response = await alice.post("/api/notifications", json=channel)
        assert response.status_code == 201, response.text
        channel_id = response.json()["notification"]["id"]
        channel_secret = response.json()["secret"]
        channel_url = f"/api/notifications/{channel_id}"
        assert (await alice.put(channel_url, json={"enabled": False})).status_code == 200
        assert (await alice.delete(channel_url)).status_code == 200

        # A personal token.
        response = await alice.post("/api/tokens", json={"name": "ci"})
        assert response.status_code == 201, response.text
        token_id, token_secret = response.json()["token"]["id"], response.json()["secret"]
        assert (await alice.delete(f"/api/tokens/{token_id}")).status_code == 200

        # A backup: made, downloaded, verified, pinned, restored, deleted.
        backup = await alice.wait_backup((await alice.start_backup(database_id))["id"])
        assert backup["status"] == "completed", backup
        backup_url = f"/api/backups/{backup['id']}"
        assert (await alice.get(f"{backup_url}/download")).status_code == 200
        assert (await alice.post(f"{backup_url}/verify")).status_code == 200
        assert (await alice.put(backup_url, json={"pinned": True})).status_code == 200
        response = await alice.post(
            f"{backup_url}/restore", json={"database_id": database_id, "confirm": source}
        )
        assert response.status_code == 202, response.text
        restore = await alice.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed", restore
        assert (await alice.delete(f"/api/restores/{restore['id']}")).status_code == 200
        assert (await alice.delete(backup_url)).status_code == 200
        assert (await alice.delete(url)).status_code == 200

        # The account itself: its password, its role; another account deleted.
        change = {"current_password": "pas-le-bon-mot", "new_password": NEW_PASSWORD}
        assert (await alice.put("/auth/password", json=change)).status_code == 403
        change["current_password"] = PASSWORD
        response = await alice.put("/auth/password", json=change)
        assert response.status_code == 200, response.text
        role = await root.put(f"/api/users/{alice_id}/role", json={"role": "admin"})
        assert role.status_code == 200, role.text
        assert (await root.delete(f"/api/users/{bob_id}")).status_code == 200

        entries = await trail(root, limit=1000)
        pg_server.drop_database(source)

    # Who did it, on what.
    find(entries, "register", user_id=root_id, target_type="user", target_id=root_id)
    find(entries, "register", user_id=alice_id, target_type="user", target_id=alice_id)
    find(entries, "login", user_id=alice_id)
    failed = find(entries, "login", "failure", user_id=bob_id)
    assert failed["details"] == {"via": "login"}
    assert find(entries, "login", "failure", user_id=None)["details"] == {
        "via": "login",
        "email": "nobody@example.com",
    }
    find(entries, "login", "throttled", user_id=bob_id)
    on_database = {"user_id": alice_id, "target_type": "database", "target_id": database_id}
    find(entries, "database_create", **on_database)
    updated = find(entries, "database_update", **on_database)
    assert updated["details"] == {"fields": ["name"]}
    for action in (
        "schedule_update",
        "schedule_delete",
        "retention_update",
        "retention_delete",
        "database_delete",
    ):
        find(entries, action, **on_database)
    on_storage = {"user_id": alice_id, "target_type": "storage", "target_id": storage_id}
    for action in ("storage_create", "storage_update", "storage_delete"):
        find(entries, action, **on_storage)
    on_channel = {"user_id": alice_id, "target_type": "notification", "target_id": channel_id}
    assert find(entries, "notification_create", **on_channel)["details"] == {
        "channel_type": "webhook"
    }
    assert find(entries, "notification_update", **on_channel)["details"] == {"fields": ["enabled"]}
    find(entries, "notification_delete", **on_channel)
    on_token = {"user_id": alice_id, "target_type": "api_token", "target_id": token_id}
    find(entries, "api_token_create", **on_token)
    find(entries, "api_token_revoke", **on_token)
    on_backup = {"user_id": alice_id, "target_type": "backup", "target_id": backup["id"]}
    created = find(entries, "backup_create", **on_backup)
    assert created["details"] == {"database_id": database_id}
    for action in ("backup_download", "backup_delete"):
        find(entries, action, **on_backup)
    assert find(entries, "backup_verify", **on_backup)["details"]["valid"] is True
    assert find(entries, "backup_pin", **on_backup)["details"] == {"pinned": True}
    on_restore = {"user_id": alice_id, "target_type": "restore", "target_id": restore["id"]}
    restored = find(entries, "restore_create", **on_restore)
    assert restored["details"]["backup_id"] == backup["id"]
    find(entries, "restore_delete", **on_restore)
    find(entries, "password_change", "failure", user_id=alice_id)
    find(entries, "password_change", user_id=alice_id)
    role_change = find(
        entries, "user_role_change", user_id=root_id, target_type="user", target_id=alice_id
    )
    assert role_change["details"] == {"role": "admin"}
    find(entries, "user_delete", user_id=root_id, target_type="user", target_id=bob_id)

    # From where, when, within which request; and never a secret.
    assert {entry["client"] for entry in entries} == {CLIENT}
    assert all(entry["request_id"] for entry in entries)
    assert all(entry["time"].endswith("Z") for entry in entries)
    everything = repr(entries)
    secrets = (PASSWORD, NEW_PASSWORD, "pas-le-bon-mot", STORAGE_SECRET, token_secret)
    for secret in (*secrets, CHANNEL_TOKEN, channel_secret):
        assert secret not in everything
    assert pg_server.password not in everything


async def test_filters_and_pages(client: httpx.AsyncClient) -> None:
    root = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    for _ in range(3):
        await alice.login("alice@example.com")
    alice_id = alice.user["id"]

    everything = await trail(root)
    # Newest first: the ids go down.
    ids = [entry["id"] for entry in everything]
    assert ids == sorted(ids, reverse=True)
    assert [e["action"] for e in everything][:4] == ["login"] * 4

    mine = await trail(root, user_id=alice_id)
    assert {e["user_id"] for e in mine} == {alice_id}
    assert [e["action"] for e in mine] == ["login"] * 4 + ["register"]
    logins = await trail(root, action="login", user_id=alice_id)
    assert [e["id"] for e in logins] == [e["id"] for e in mine[:4]]
    assert await trail(root, action="user_delete") == []

    # Pages: limit and offset over the same order.
    first = await trail(root, user_id=alice_id, limit=2)
    second = await trail(root, user_id=alice_id, limit=2, offset=2)
    assert [e["id"] for e in first + second] == [e["id"] for e in mine[:4]]

    # Time bounds, inclusive, with or without an offset.
    now = datetime.now(UTC)
    assert len(await trail(root, since=(now - timedelta(minutes=5)).isoformat())) == len(everything)
    assert await trail(root, since=(now + timedelta(minutes=5)).isoformat()) == []
    assert await trail(root, until=(now - timedelta(minutes=5)).isoformat()) == []
    naive_until = (now + timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    assert len(await trail(root, until=naive_until)) == len(everything)
    east = (now - timedelta(minutes=5)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert len(await trail(root, since=east)) == len(everything)

    # Bad parameters: French, 400.
    for params, message in [
        ({"since": "hier"}, "Données invalides: since: date ISO 8601 attendue"),
        # A number is not taken for seconds since 1970.
        ({"until": "0.5"}, "Données invalides: until: date ISO 8601 attendue"),
        ({"user_id": "0"}, "Données invalides: user_id:"),
        ({"action": "DROP TABLE"}, "Données invalides: action:"),
        ({"limit": "100000"}, "Données invalides: limit: valeur trop grande"),
    ]:
        response = await root.get("/api/audit", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"].startswith(message), response.json()
    # A window that ends before it begins holds nothing.
    params = {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()}
    response = await root.get("/api/audit", params=params)
    assert (response.status_code, response.json()) == (200, {"audit": []})


async def test_only_admins_read_the_trail(client: httpx.AsyncClient) -> None:
    root = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    response = await alice.get("/api/audit")
    assert response.status_code == 403
    assert response.json() == {"error": "Action réservée aux administrateurs"}
    response = await client.get("/api/audit")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentification requise"}
    # The refusals are not entries the user could read anyway; the admin reads them all.
    assert (await root.get("/api/audit")).status_code == 200


async def test_a_deleted_accounts_entries_stay(client: httpx.AsyncClient) -> None:
    root = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    alice_id = alice.user["id"]
    response = await alice.post("/api/tokens", json={"name": "ci"})
    assert response.status_code == 201
    before = await trail(root, user_id=alice_id)
    assert [e["action"] for e in before] == ["api_token_create", "login", "register"]
    assert (await root.delete(f"/api/users/{alice_id}")).status_code == 200
    after = await trail(root, user_id=alice_id)
    assert after == before
    deleted = await trail(root, action="user_delete")
    assert [(e["user_id"], e["target_id"]) for e in deleted] == [(root.user["id"], alice_id)]


async def test_entries_carry_the_request_id(client: httpx.AsyncClient) -> None:
    root = await Api(client).signup("root@example.com", role="admin")
    response = await root.post(
        "/api/tokens", json={"name": "ci"}, headers={"X-Request-ID": "proxy-7f3a.42"}
    )
    assert response.headers["x-request-id"] == "proxy-7f3a.42"
    # An id that could bend a log line is replaced by one of ours.
    response = await root.post(
        "/api/tokens", json={"name": "ci2"}, headers={"X-Request-ID": 'a" b\tc'}
    )
    replaced = response.headers["x-request-id"]
    assert replaced != 'a" b\tc'
    assert len(replaced) == 32
    created = await trail(root, action="api_token_create")
    assert [e["request_id"] for e in created] == [replaced, "proxy-7f3a.42"]


async def test_entries_are_stored_on_shutdown(
    settings_factory: Callable[..., Settings],
) -> None:
    """The writer stores entries on its own, with no listing asking for them, at the
    latest before the service it belongs to stops."""
    settings = settings_factory()
    async with running_app(settings) as (_, client):
        await Api(client).signup("root@example.com", role="admin")
    async with running_app(settings) as (app, _):
        table = AuditEvent.__table__  # type: ignore[attr-defined]
        rows = await metadata_sql(app, table.select().order_by(table.c.id))
    assert [(row.action, row.outcome) for row in rows] == [
        ("register", "success"),
        ("login", "success"),
    ]
