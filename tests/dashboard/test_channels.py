"""The dashboard's notification channels and audit log without a browser: a webhook added
to a real local receiver, its secret shown once, its URL never sent back, its test and
its deliveries; the audit log's filters and pages for an admin, refused to a user; the
CSRF token on every new form; and a restore drill's mark beside a backup."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from markupsafe import escape

from backup_api import events
from backup_api.config import Settings
from backup_api.dashboard.web import CSRF_REFUSED, ENVIRONMENT
from backup_api.repositories import audit as audit_records
from backup_api.services.notifications import SCOPE_ADMIN_ONLY
from tests.notifications.receiver import Receiver, receiving, verify_signature
from tests.support.apphelpers import PASSWORD, Api, running_app

SECRET = re.compile(r'<p class="secret" id="webhook-secret">(whsec_[A-Za-z0-9+/=]+)</p>')


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert match, page.text
    return match.group(1)


async def _sign_in(client: httpx.AsyncClient, email: str) -> None:
    client.cookies.clear()
    form = await client.get("/login")
    response = await client.post(
        "/login", data={"csrf_token": _csrf(form), "email": email, "password": PASSWORD}
    )
    assert response.status_code == 303, response.text


async def _page_until(client: httpx.AsyncClient, path: str, text: str) -> str:
    """The page once it shows ``text`` (a delivery is recorded in the background)."""
    deadline = time.monotonic() + 30
    while True:
        page = await client.get(path)
        if text in page.text:
            return page.text
        assert time.monotonic() < deadline, page.text
        await asyncio.sleep(0.05)


async def test_a_webhook_is_added_tested_edited_and_its_secrets_stay_hidden(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with receiving() as receiver:
        async with running_app(settings) as (app, client):
            alice = await Api(client).signup("alice@example.com")
            await Api(client).signup("bob@example.com")
            await _channel_life(app, client, alice, receiver)


async def _channel_life(
    app: Any, client: httpx.AsyncClient, alice: Api, receiver: Receiver
) -> None:
    url = receiver.url("/hook?token=T0KEN-alice")
    await _sign_in(client, "alice@example.com")
    page = await client.get("/notifications")
    assert page.status_code == 200
    assert "Aucun canal" in page.text
    # A user's channels hear their own events: the scope "all" is an admin's choice only.
    assert 'name="scope"' not in page.text
    for event_type in events.EVENT_TYPES:
        assert f'value="{event_type}"' in page.text
    fields = {
        "name": "Alertes Alice",
        "type": "webhook",
        "url": url,
        "events": ["backup.completed", "backup.failed"],
        "enabled": "on",
    }
    # Without the token, or with another, nothing is created.
    for token in ({}, {"csrf_token": "0" * 64}):
        refused = await client.post("/notifications", data={**fields, **token})
        assert refused.status_code == 403
        assert CSRF_REFUSED in refused.text
    assert (await alice.get("/api/notifications")).json()["notifications"] == []
    # Scope "all" forced by hand: refused as the API refuses it; the URL not sent back.
    refused = await client.post(
        "/notifications", data={**fields, "scope": "all", "csrf_token": _csrf(page)}
    )
    assert refused.status_code == 403
    assert str(escape(SCOPE_ADMIN_ONLY)) in refused.text
    assert "T0KEN" not in refused.text

    created = await client.post("/notifications", data={**fields, "csrf_token": _csrf(page)})
    assert created.status_code == 201, created.text
    secret_match = SECRET.search(created.text)
    assert secret_match, created.text
    secret = secret_match.group(1)
    assert "T0KEN" not in created.text
    [channel] = (await alice.get("/api/notifications")).json()["notifications"]
    assert channel["name"] == "Alertes Alice"
    assert channel["events"] == ["backup.completed", "backup.failed"]
    assert channel["scope"] == "own"
    # Listed with the URL masked as the API shows it; the secret never again.
    listing = await client.get("/notifications")
    assert channel["url"] in listing.text
    # Her own list: no owner column (an admin's has one).
    assert "Propriétaire" not in listing.text
    assert secret not in listing.text
    assert "T0KEN" not in listing.text
    channel_page = await client.get(f"/notifications/{channel['id']}")
    assert secret not in channel_page.text
    assert "T0KEN" not in channel_page.text
    assert "Aucune tentative de livraison" in channel_page.text

    # The test: a signed request reaches the receiver, and the page says its answer.
    path = f"/notifications/{channel['id']}"
    for token in ({}, {"csrf_token": "0" * 64}):
        refused = await client.post(f"{path}/test", data=token)
        assert refused.status_code == 403
    assert receiver.requests == []
    tested = await client.post(f"{path}/test", data={"csrf_token": _csrf(channel_page)})
    assert tested.status_code == 200
    assert "Test envoyé : le destinataire a répondu 200" in tested.text
    [test_request] = await receiver.wait_for(1)
    assert test_request.path == "/hook?token=T0KEN-alice"
    assert verify_signature(secret, test_request.headers, test_request.body)
    receiver.statuses = [503]
    failed = await client.post(f"{path}/test", data={"csrf_token": _csrf(channel_page)})
    assert "Échec du test (réponse 503)" in failed.text

    # An event of hers: delivered, and listed with the receiver's status code.
    app.state.backup_api.events.publish(
        events.ServiceEvent(events.BACKUP_COMPLETED, alice.user["id"], {"backup": {"id": 1}})
    )
    deliveries = await _page_until(client, path, "livrée")
    assert re.search(r"<td>backup.completed</td>\s*<td>n° 1</td>\s*<td>200</td>", deliveries)

    # Edited with the URL field left empty: the stored URL stays (the next test reaches it).
    edit = {"name": "Alertes renommées", "events": ["backup.failed"], "enabled": "on"}
    refused = await client.post(f"{path}/edit", data=edit)
    assert refused.status_code == 403
    edited = await client.post(f"{path}/edit", data={**edit, "csrf_token": _csrf(channel_page)})
    assert edited.status_code == 303
    now = (await alice.get(f"/api/notifications/{channel['id']}")).json()["notification"]
    assert now["name"] == "Alertes renommées"
    assert now["events"] == ["backup.failed"]
    assert now["url"] == channel["url"]
    await client.post(f"{path}/test", data={"csrf_token": _csrf(channel_page)})
    requests = await receiver.wait_for(4)
    assert requests[-1].path == "/hook?token=T0KEN-alice"
    # A bad URL is refused in French, and what was typed is not sent back.
    bad = await client.post(
        f"{path}/edit",
        data={**edit, "url": "ftp://example.com/T0KEN", "csrf_token": _csrf(channel_page)},
    )
    assert bad.status_code == 400
    assert "Données invalides: url" in bad.text
    assert "T0KEN" not in bad.text

    # Disabled then enabled again, from the list.
    for flag, expected in (("false", False), ("true", True)):
        assert (await client.post(f"{path}/enabled", data={"enabled": flag})).status_code == 403
        toggled = await client.post(
            f"{path}/enabled", data={"enabled": flag, "csrf_token": _csrf(channel_page)}
        )
        assert toggled.status_code == 303
        now = (await alice.get(f"/api/notifications/{channel['id']}")).json()["notification"]
        assert now["enabled"] is expected

    # Bob sees none of it.
    await _sign_in(client, "bob@example.com")
    listing = await client.get("/notifications")
    assert "Alertes renommées" not in listing.text
    assert "Aucun canal" in listing.text
    assert (await client.get(path)).status_code == 403
    assert (await client.get("/notifications/999999")).status_code == 404

    await _sign_in(client, "alice@example.com")
    assert (await client.post(f"{path}/delete", data={})).status_code == 403
    deleted = await client.post(f"{path}/delete", data={"csrf_token": _csrf(channel_page)})
    assert deleted.status_code == 303
    assert (await alice.get(f"/api/notifications/{channel['id']}")).status_code == 404

    # The changes made here are in the audit trail, as the API's are, under her account.
    state = app.state.backup_api
    await state.audit.flush()
    trail = await state.metadata.read(
        lambda c: audit_records.page(
            c, user_id=None, action=None, since=None, until=None, limit=500, offset=0
        )
    )
    changes = [
        (row.action, row.user_id, row.details)
        for row in reversed(trail)
        if row.target_type == "notification" and row.target_id == channel["id"]
    ]
    me = alice.user["id"]
    assert changes == [
        ("notification_create", me, {"channel_type": "webhook"}),
        ("notification_update", me, {"fields": ["enabled", "events", "name", "scope"]}),
        ("notification_update", me, {"fields": ["enabled"]}),
        ("notification_update", me, {"fields": ["enabled"]}),
        ("notification_delete", me, {}),
    ]


async def test_an_admin_reads_the_audit_log_a_user_cannot(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory()) as (app, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        carol = await Api(client).signup("carol@example.com")
        start = datetime(2026, 1, 1, tzinfo=UTC)
        # 60 old entries of Carol's, a minute apart: more than a page.
        entries = [
            {
                "time": start + timedelta(minutes=n),
                "user_id": carol.user["id"],
                "client": "198.51.100.9",
                "action": "backup_delete",
                "target_type": "backup",
                "target_id": n + 1,
                "outcome": "success",
                "details": {"rang": n},
            }
            for n in range(60)
        ]
        await app.state.backup_api.metadata.write(lambda c: audit_records.insert_many(c, entries))

        await _sign_in(client, "carol@example.com")
        refused = await client.get("/audit")
        assert refused.status_code == 403
        assert "Action réservée aux administrateurs" in refused.text
        assert "backup_delete" not in refused.text
        assert "Journal d'audit" not in (await client.get("/")).text

        await _sign_in(client, "root@example.com")
        assert "Journal d'audit" in (await client.get("/")).text
        page = await client.get("/audit")
        assert page.status_code == 200
        # Newest first: the admin's own sign-in above Carol's old entries.
        actions = re.findall(r'<td class="mono">([a-z_]+)</td>', page.text)
        assert actions[0] == "login"
        assert actions.index("login") < actions.index("backup_delete")

        only_carol = await client.get(
            "/audit", params={"user_id": str(carol.user["id"]), "action": "backup_delete"}
        )
        targets = [int(n) for n in re.findall(r"<td>backup #(\d+)</td>", only_carol.text)]
        assert targets == list(range(60, 10, -1))
        assert "carol@example.com" in only_carol.text
        assert "Page suivante" in only_carol.text
        assert "Page précédente" not in only_carol.text
        next_link = re.search(r'href="/audit\?([^"]+)">Page suivante', only_carol.text)
        assert next_link
        second = await client.get("/audit?" + next_link.group(1).replace("&amp;", "&"))
        targets = [int(n) for n in re.findall(r"<td>backup #(\d+)</td>", second.text)]
        assert targets == list(range(10, 0, -1))
        assert "Page précédente" in second.text
        assert "Page suivante" not in second.text

        # A window of time: inclusive bounds, read as UTC.
        window = await client.get(
            "/audit", params={"since": "2026-01-01T00:10", "until": "2026-01-01T00:12"}
        )
        targets = [int(n) for n in re.findall(r"<td>backup #(\d+)</td>", window.text)]
        assert targets == [13, 12, 11]
        assert 'value="2026-01-01T00:10"' in window.text
        backwards = await client.get(
            "/audit", params={"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"}
        )
        # A window that ends before it begins holds nothing, as GET /api/audit says.
        assert backwards.status_code == 200
        assert re.findall(r"<td>backup #(\d+)</td>", backwards.text) == []
        for params in ({"since": "hier"}, {"action": "DROP TABLE"}, {"page": "0"}):
            assert (await client.get("/audit", params=params)).status_code == 400, params
        assert admin.user["id"] != carol.user["id"]


BACKUP: dict[str, Any] = {
    "id": 7,
    "status": "completed",
    "started_at": "2026-11-28T10:00:00Z",
    "created_at": "2026-11-28T10:00:00Z",
    "finished_at": "2026-11-28T10:01:00Z",
    "trigger": "schedule",
    "size": 2048,
    "duration_seconds": 60,
    "copies": [],
    "pinned": False,
    "checksum": None,
    "error_msg": None,
}


def test_a_backups_restore_drill_is_marked_when_the_record_has_one() -> None:
    template = ENVIRONMENT.get_template("_backup_status.html")

    def render(backup: dict[str, Any]) -> str:
        return template.render(backup=backup, csrf="t", csrf_field="csrf_token")

    bare = render(BACKUP)
    assert "restauration prouvée" not in bare
    assert "vérification échouée" not in bare
    drill = {"id": 3, "finished_at": "2026-11-28T11:00:00Z"}
    passed = render({**BACKUP, "last_drill": {**drill, "status": "passed"}})
    assert "restauration prouvée" in passed
    assert "28/11/2026 11:00 UTC" in passed
    assert "vérification échouée" not in passed
    failed = render({**BACKUP, "last_drill": {**drill, "status": "failed"}})
    assert "vérification échouée" in failed
    assert "restauration prouvée" not in failed
    running = render({**BACKUP, "last_drill": {**drill, "status": "running"}})
    assert "restauration prouvée" not in running
    assert "vérification échouée" not in running
