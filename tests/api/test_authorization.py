"""Object-level authorization: every route that takes an id, called by another user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.apphelpers import Api, unique_name
from tests.support.sample_data import create_filled

ROUTES = [
    ("GET", "/api/databases/{database}", None),
    ("PUT", "/api/databases/{database}", {"name": "pris par bob"}),
    ("DELETE", "/api/databases/{database}", None),
    ("POST", "/api/databases/{database}/test", None),
    ("GET", "/api/databases/{database}/retention", None),
    ("PUT", "/api/databases/{database}/retention", {"keep_last": 1}),
    ("DELETE", "/api/databases/{database}/retention", None),
    ("GET", "/api/databases/{database}/retention/preview", None),
    ("POST", "/api/databases/{database}/retention/preview", {"keep_last": 1}),
    ("PUT", "/api/databases/{database}/schedule", {"cron": "* * * * *"}),
    ("GET", "/api/databases/{database}/schedule", None),
    ("DELETE", "/api/databases/{database}/schedule", None),
    ("POST", "/api/backups/database/{database}", None),
    ("GET", "/api/backups/database/{database}", None),
    ("GET", "/api/backups/{backup}", None),
    ("GET", "/api/backups/{backup}/events", None),
    ("GET", "/api/backups/{backup}/download", None),
    ("POST", "/api/backups/{backup}/verify", None),
    ("POST", "/api/backups/{backup}/copies/retry", None),
    ("GET", "/api/backups/{backup}/download?storage_id=local", None),
    ("POST", "/api/backups/{backup}/restore", {"database_id": "{database}"}),
    ("POST", "/api/backups/{bob_backup}/restore", {"database_id": "{database}"}),
    ("PUT", "/api/backups/{backup}", {"pinned": True}),
    ("DELETE", "/api/backups/{backup}", None),
    ("GET", "/api/restores/{restore}", None),
    ("GET", "/api/restores/{restore}/events", None),
    ("DELETE", "/api/restores/{restore}", None),
    ("GET", "/api/tokens/{token}", None),
    ("DELETE", "/api/tokens/{token}", None),
    ("GET", "/api/storages/{storage}", None),
    ("PUT", "/api/storages/{storage}", {"name": "pris par bob"}),
    ("DELETE", "/api/storages/{storage}", None),
    ("POST", "/api/storages/{storage}/test", None),
    ("POST", "/api/storages/{storage}/import", None),
    ("GET", "/api/notifications/{notification}", None),
    ("PUT", "/api/notifications/{notification}", {"name": "pris par bob"}),
    ("DELETE", "/api/notifications/{notification}", None),
    ("POST", "/api/notifications/{notification}/test", None),
    ("GET", "/api/notifications/{notification}/deliveries", None),
    # Naming someone else's storage as a destination of one's own database.
    ("PUT", "/api/databases/{bob_database}", {"storage_ids": ["{storage}"]}),
    (
        "PUT",
        "/api/databases/{database}/drill",
        {"target_database_id": "{scratch}", "cron": "@daily"},
    ),
    ("GET", "/api/databases/{database}/drill", None),
    ("DELETE", "/api/databases/{database}/drill", None),
    ("POST", "/api/backups/{backup}/drill", {"target_database_id": "{scratch}"}),
    ("GET", "/api/drills/{drill}", None),
    # Someone else's scratch database as the target of one's own drills.
    ("POST", "/api/backups/{bob_backup}/drill", {"target_database_id": "{scratch}"}),
    (
        "PUT",
        "/api/databases/{bob_database}/drill",
        {"target_database_id": "{scratch}", "cron": "@daily"},
    ),
]


def _fill(template: Any, ids: dict[str, int]) -> Any:
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in ids:
            return ids[template[1:-1]]
        return template.format(**ids)
    if isinstance(template, dict):
        return {key: _fill(value, ids) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, ids) for value in template]
    return template


async def _state(api: Api) -> dict[str, Any]:
    databases = (await api.get("/api/databases")).json()
    backups = (await api.get("/api/backups")).json()
    restores = (await api.get("/api/restores")).json()
    tokens = (await api.get("/api/tokens")).json()
    storages = (await api.get("/api/storages")).json()
    notifications = (await api.get("/api/notifications")).json()
    deliveries = [
        (await api.get(f"/api/notifications/{n['id']}/deliveries")).json()
        for n in notifications["notifications"]
    ]
    retention = {
        d["id"]: (await api.get(f"/api/databases/{d['id']}/retention")).json()
        for d in databases["databases"]
    }
    schedules = [
        (await api.get(f"/api/databases/{database['id']}/schedule")).json()
        for database in databases["databases"]
    ]
    drills = [
        (await api.get(f"/api/databases/{database['id']}/drill")).json()
        for database in databases["databases"]
    ]
    return {
        "databases": databases,
        "backups": backups,
        "restores": restores,
        "tokens": tokens,
        "storages": storages,
        "notifications": notifications,
        "deliveries": deliveries,
        "retention": retention,
        "schedules": schedules,
        "drills": drills,
        "drill_records": (await api.get("/api/drills")).json(),
    }


async def test_second_user_gets_403_everywhere(
    client: httpx.AsyncClient, pg_server: Any, tmp_path: Path
) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    bob = await Api(client).signup("bob@example.com")
    source = unique_name("authz")
    create_filled(pg_server, source)

    storage = await alice.post(
        "/api/storages",
        json={"name": "s3", "endpoint": "http://127.0.0.1:9", "bucket": "alice-backups"},
    )
    assert storage.status_code == 201, storage.text
    bob_storage = await bob.post(
        "/api/storages",
        json={"name": "s3", "endpoint": "http://127.0.0.1:9", "bucket": "bob-backups"},
    )
    database = await alice.add_database(pg_server, source)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup
    response = await alice.post(
        f"/api/backups/{backup['id']}/restore",
        json={"database_id": database["id"], "confirm": source},
    )
    assert response.status_code == 202, response.text
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    response = await alice.put(
        f"/api/databases/{database['id']}/schedule", json={"cron": "0 3 * * *"}
    )
    assert response.status_code == 200, response.text
    scratch_name = unique_name("authz_scratch")
    pg_server.create_database(scratch_name)
    scratch = await alice.add_database(pg_server, scratch_name, scratch=True, confirm=scratch_name)
    response = await alice.put(
        f"/api/databases/{database['id']}/drill",
        json={"target_database_id": scratch["id"], "cron": "0 5 * * 0"},
    )
    assert response.status_code == 200, response.text
    response = await alice.post(f"/api/backups/{backup['id']}/drill")
    assert response.status_code == 202, response.text
    drill = await alice._wait(f"/api/drills/{response.json()['drill']['id']}", "drill", 60)
    assert drill["status"] == "passed", drill
    bob_database = await bob.add_database(pg_server, source)
    bob_backup = await bob.wait_backup((await bob.start_backup(bob_database["id"]))["id"])
    token = (await alice.post("/api/tokens", json={"name": "ci"})).json()["token"]
    bob_token = (await bob.post("/api/tokens", json={"name": "ci"})).json()["token"]
    # A public address (a non-admin's webhook must have one), for an event that no step
    # of this test publishes: nothing is ever sent to it.
    notification = await alice.post(
        "/api/notifications",
        json={
            "name": "hook",
            "type": "webhook",
            "url": "https://1.1.1.1/hook",
            "events": ["drill.failed"],
        },
    )
    assert notification.status_code == 201, notification.text
    bob_notification = await bob.post(
        "/api/notifications",
        json={
            "name": "hook",
            "type": "webhook",
            "url": "https://1.1.1.1/bob",
            "events": ["drill.failed"],
        },
    )
    assert bob_notification.status_code == 201, bob_notification.text
    ids = {
        "notification": notification.json()["notification"]["id"],
        "database": database["id"],
        "backup": backup["id"],
        "restore": restore["id"],
        "bob_backup": bob_backup["id"],
        "token": token["id"],
        "storage": storage.json()["storage"]["id"],
        "bob_database": bob_database["id"],
        "scratch": scratch["id"],
        "drill": drill["id"],
    }
    response = await alice.put(
        f"/api/databases/{database['id']}/retention", json={"keep_last": 5, "keep_daily": 7}
    )
    assert response.status_code == 200, response.text
    # After its jobs: the storage's endpoint is nowhere a backup could go.
    response = await alice.put(
        f"/api/databases/{database['id']}", json={"storage_ids": [ids["storage"]]}
    )
    assert response.status_code == 200, response.text
    before = await _state(alice)

    for method, template, body in ROUTES:
        url = _fill(template, ids)
        response = await bob.request(method, url, json=_fill(body, ids) if body else None)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json() == {"error": "Accès non autorisé"}, (method, url)
        assert "content-disposition" not in response.headers

    assert await _state(alice) == before, "a refused request changed something"
    # Listings never show another user's records.
    assert [d["id"] for d in (await bob.get("/api/databases")).json()["databases"]] == [
        bob_database["id"]
    ]
    assert [b["id"] for b in (await bob.get("/api/backups")).json()["backups"]] == [
        bob_backup["id"]
    ]
    assert (await bob.get("/api/restores")).json()["restores"] == []
    assert (await bob.get("/api/drills")).json()["drills"] == []
    assert [t["id"] for t in (await bob.get("/api/tokens")).json()["tokens"]] == [bob_token["id"]]
    assert [s["id"] for s in (await bob.get("/api/storages")).json()["storages"]] == [
        bob_storage.json()["storage"]["id"]
    ]
    bob_channels = (await bob.get("/api/notifications")).json()["notifications"]
    assert [n["id"] for n in bob_channels] == [bob_notification.json()["notification"]["id"]]

    # An admin sees and reaches everything.
    assert {b["id"] for b in (await admin.get("/api/backups")).json()["backups"]} == {
        backup["id"],
        bob_backup["id"],
    }
    for url in (
        f"/api/databases/{database['id']}",
        f"/api/databases/{database['id']}/schedule",
        f"/api/backups/{backup['id']}",
        f"/api/backups/{backup['id']}/download",
        f"/api/restores/{restore['id']}",
        f"/api/restores/{restore['id']}/events",
        f"/api/backups/{backup['id']}/events",
        f"/api/tokens/{token['id']}",
        f"/api/storages/{ids['storage']}",
        f"/api/notifications/{ids['notification']}",
        f"/api/notifications/{ids['notification']}/deliveries",
        f"/api/databases/{database['id']}/retention",
        f"/api/databases/{database['id']}/retention/preview",
        f"/api/databases/{database['id']}/drill",
        f"/api/drills/{drill['id']}",
    ):
        response = await admin.get(url)
        assert response.status_code == 200, (url, response.text)
    # An admin's listing holds their own tokens only; they may revoke anyone's.
    assert (await admin.get("/api/tokens")).json() == {"tokens": []}
    assert (await admin.delete(f"/api/tokens/{bob_token['id']}")).status_code == 200
    assert (await bob.get("/api/tokens")).json() == {"tokens": []}
    pg_server.drop_database(source)
    pg_server.drop_database(scratch_name)


async def test_admin_routes_deny_by_default(client: httpx.AsyncClient) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    alice_id = alice.user["id"]
    for method, url, body in [
        ("GET", "/api/users", None),
        ("GET", f"/api/users/{alice_id}", None),
        ("PUT", f"/api/users/{alice_id}/role", {"role": "admin"}),
        ("DELETE", f"/api/users/{admin.user['id']}", None),
        ("GET", "/api/audit", None),
    ]:
        response = await alice.request(method, url, json=body)
        assert response.status_code == 403, (method, url)
        response = await client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)
    assert (await alice.get("/auth/me")).json()["user"]["role"] == "user"

    response = await admin.get("/api/users")
    assert [u["email"] for u in response.json()["users"]] == [
        "root@example.com",
        "alice@example.com",
    ]
    assert "password" not in response.text
    response = await admin.put(f"/api/users/{alice_id}/role", json={"role": "admin"})
    assert response.json()["user"]["role"] == "admin"
    # The role change ended the token issued before; a new one carries the new role.
    assert (await alice.get("/api/users")).status_code == 401
    await alice.login("alice@example.com")
    assert (await alice.get("/api/users")).status_code == 200
    response = await admin.delete(f"/api/users/{alice_id}")
    assert response.status_code == 200
    # The deleted user's token no longer works.
    assert (await alice.get("/api/databases")).status_code == 401
    # The last admin cannot demote themself away.
    response = await admin.put(f"/api/users/{admin.user['id']}/role", json={"role": "user"})
    assert response.status_code == 409
