"""Notification channels through the API: creation (the webhook secret shown once), the
masked URL, encryption at rest, partial updates, deletion, French validation, the
outbound rule (non-admins reach public addresses unless listed; apprise for admins or
listed hosts), ``scope: all`` for admins only, and ownership on every route."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from backup_api.config import Settings
from backup_api.models import NotificationChannel
from backup_api.security import decrypt_secret
from tests.support.apphelpers import Api, metadata_sql, running_app

TOKEN_PATH = "/hooks/T0KEN-in-the-path"
TOKEN_QUERY = "key=s3cr3t-query"
URL = f"http://127.0.0.1:9/{TOKEN_PATH.lstrip('/')}?{TOKEN_QUERY}"
NOT_FOUND = {"error": "Canal de notification introuvable"}
FORBIDDEN = {"error": "Accès non autorisé"}
MISSING_ID = 2**31 - 1


def webhook(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "alertes",
        "type": "webhook",
        "url": URL,
        "events": ["backup.failed", "backup.completed"],
    }
    body.update(overrides)
    return body


async def create(api: Api, **overrides: Any) -> dict[str, Any]:
    response = await api.post("/api/notifications", json=webhook(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def leaks(text: str, *secrets: str) -> list[str]:
    return [s for s in ("T0KEN-in-the-path", "s3cr3t-query", *secrets) if s in text]


async def test_crud_secret_once_masked_and_encrypted(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (app, client):
        alice = await Api(client).signup()
        response = await alice.post("/api/notifications", json=webhook())
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["message"] == "Canal de notification ajouté avec succès"
        secret = created["secret"]
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
        assert len(base64.b64decode(secret[len("whsec_") :])) == 32
        channel = created["notification"]
        assert set(channel) == {
            "id",
            "name",
            "type",
            "url",
            "events",
            "scope",
            "enabled",
            "user_id",
            "created_at",
            "updated_at",
        }
        assert channel["url"] == "http://127.0.0.1:9/***"
        assert (channel["type"], channel["scope"], channel["enabled"]) == ("webhook", "own", True)
        assert channel["events"] == ["backup.failed", "backup.completed"]
        assert channel["user_id"] == alice.user["id"]
        assert leaks(response.text.replace(secret, "")) == []

        # Never again the secret, nor the URL's path or query.
        one = await alice.get(f"/api/notifications/{channel['id']}")
        assert one.status_code == 200
        assert one.json() == {"notification": channel}
        listing = await alice.get("/api/notifications")
        assert listing.json() == {"notifications": [channel]}
        for text in (one.text, listing.text):
            assert leaks(text, secret) == []

        # At rest: Fernet tokens, that the service's key opens.
        table = NotificationChannel.__table__  # type: ignore[attr-defined]
        rows = await metadata_sql(app, select(table).where(table.c.id == channel["id"]))
        keys = app.state.backup_api.keys
        assert leaks(str(tuple(rows[0])), secret) == []
        assert decrypt_secret(keys, rows[0].url_encrypted) == URL
        assert rows[0].secret_encrypted is not None
        assert decrypt_secret(keys, rows[0].secret_encrypted) == secret

        # Partial update: omitted fields are kept.
        response = await alice.put(
            f"/api/notifications/{channel['id']}",
            json={"name": "renommé", "events": ["restore.failed"], "enabled": False},
        )
        assert response.status_code == 200, response.text
        updated = response.json()["notification"]
        assert response.json()["message"] == "Canal de notification mis à jour avec succès"
        assert (updated["name"], updated["events"], updated["enabled"]) == (
            "renommé",
            ["restore.failed"],
            False,
        )
        assert updated["url"] == channel["url"]
        assert "secret" not in response.json()
        new_url = "https://localhost:8443/other/T0KEN-in-the-path"
        response = await alice.put(f"/api/notifications/{channel['id']}", json={"url": new_url})
        assert response.status_code == 200, response.text
        assert response.json()["notification"]["url"] == "https://localhost:8443/***"
        assert leaks(response.text) == []
        rows = await metadata_sql(app, select(table).where(table.c.id == channel["id"]))
        assert decrypt_secret(keys, rows[0].url_encrypted) == new_url
        # The secret stays what it was.
        assert decrypt_secret(keys, rows[0].secret_encrypted) == secret

        response = await alice.put(f"/api/notifications/{channel['id']}", json={"name": None})
        assert response.status_code == 400
        assert response.json()["error"].startswith("Données invalides: name: null refusé")

        response = await alice.delete(f"/api/notifications/{channel['id']}")
        assert response.status_code == 200
        assert response.json() == {"message": "Canal de notification supprimé avec succès"}
        response = await alice.get(f"/api/notifications/{channel['id']}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


async def test_validation_in_french(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (_, client):
        alice = await Api(client).signup()
        cases = [
            (
                webhook(events=["backup.exploded"]),
                "Données invalides: events: type d'événement inconnu: backup.exploded",
            ),
            (webhook(events=[]), "Données invalides: events: au moins un type d'événement"),
            (
                webhook(events=["backup.failed", "backup.failed"]),
                "Données invalides: events: types d'événement en double",
            ),
            (webhook(url="ftp://127.0.0.1/x"), "Données invalides: url: URL invalide (http"),
            (
                webhook(url="http://user:pa55word@127.0.0.1/x"),
                "Données invalides: url: identifiants interdits dans l'URL",
            ),
            (webhook(type="pigeon"), "Données invalides: type:"),
            (webhook(name=" "), "Données invalides: name:"),
            (
                webhook(type="apprise", url="nothing-here"),
                "Données invalides: url: URL apprise invalide",
            ),
            (
                webhook(type="apprise", url="unknownscheme://127.0.0.1/x"),
                "Données invalides: url: URL apprise non reconnue",
            ),
            (
                webhook(url="http://no-such-host.invalid/x"),
                "Données invalides: url: hôte introuvable: no-such-host.invalid",
            ),
        ]
        for body, message in cases:
            response = await alice.post("/api/notifications", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"].startswith(message), (body, response.json())
            assert "pa55word" not in response.text
        assert (await alice.get("/api/notifications")).json() == {"notifications": []}


async def test_outbound_rule_apprise_and_scope(
    settings_factory: Callable[..., Settings],
) -> None:
    apprise_url = "json://127.0.0.1:9/apprise-T0KEN-in-the-path"
    unlisted = settings_factory()
    async with running_app(unlisted) as (_, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        alice = await Api(client).signup()

        # A non-admin's webhook to a private address is refused, and the URL's secrets
        # are not in the message.
        for url in (URL, "http://localhost:9/x", "http://10.1.2.3/x", "http://[::1]:9/x"):
            response = await alice.post("/api/notifications", json=webhook(url=url))
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"].startswith(
                "Données invalides: url: adresse non publique (privée, locale ou réservée) "
                "non autorisée"
            ), response.json()
            assert leaks(response.text) == []
        response = await alice.post(
            "/api/notifications", json=webhook(type="apprise", url=apprise_url)
        )
        assert response.status_code == 403, response.text
        assert response.json() == {
            "error": "Données invalides: url: les canaux apprise sont réservés aux "
            "administrateurs, sauf vers un hôte listé dans BACKUP_API_ALLOWED_OUTBOUND_HOSTS"
        }
        response = await alice.post("/api/notifications", json=webhook(scope="all"))
        assert response.status_code == 403, response.text
        assert response.json() == {
            "error": "Données invalides: scope: « all » est réservé aux canaux d'un administrateur"
        }
        assert (await alice.get("/api/notifications")).json() == {"notifications": []}

        # Admins are not limited.
        hook = (await create(admin, scope="all"))["notification"]
        assert hook["scope"] == "all"
        created = await create(admin, type="apprise", url=apprise_url)
        assert created["secret"] is None
        assert created["notification"]["url"] == "json://***"

        # An admin cannot give a user's channel the scope "all" either.
        response = await admin.post("/api/notifications", json=webhook())
        assert response.status_code == 201

    # Listed, the host is open to everyone, apprise included.
    # (The same metadata database, whichever backend the suite runs on.)
    settings = unlisted.model_copy(update={"allowed_outbound_hosts": ["127.0.0.0/8"]})
    async with running_app(settings) as (_, client):
        alice = await Api(client).login(alice.user["email"])
        admin = await Api(client).login("root@example.com")
        mine = (await create(alice))["notification"]
        assert (await create(alice, type="apprise", url=apprise_url))["secret"] is None
        response = await admin.put(f"/api/notifications/{mine['id']}", json={"scope": "all"})
        assert response.status_code == 403, response.text
        assert "scope" in response.json()["error"]
        response = await alice.put(
            f"/api/notifications/{mine['id']}", json={"url": "http://10.0.0.1/x"}
        )
        assert response.status_code == 400, response.text


async def test_ownership(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (_, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        alice = await Api(client).signup()
        bob = await Api(client).signup()
        alices = (await create(alice))["notification"]
        bobs = (await create(bob, name="bob"))["notification"]
        base = f"/api/notifications/{alices['id']}"
        for method, url, body in [
            ("GET", base, None),
            ("PUT", base, {"name": "pris par bob"}),
            ("DELETE", base, None),
            ("POST", f"{base}/test", None),
            ("GET", f"{base}/deliveries", None),
        ]:
            response = await bob.request(method, url, json=body)
            assert (response.status_code, response.json()) == (403, FORBIDDEN), (method, url)
            missing = url.replace(str(alices["id"]), str(MISSING_ID))
            response = await bob.request(method, missing, json=body)
            assert (response.status_code, response.json()) == (404, NOT_FOUND), (method, url)
        assert (await alice.get(base)).json()["notification"] == alices
        assert [c["id"] for c in (await bob.get("/api/notifications")).json()["notifications"]] == [
            bobs["id"]
        ]
        everyone = (await admin.get("/api/notifications")).json()["notifications"]
        assert [c["id"] for c in everyone] == [alices["id"], bobs["id"]]
        response = await admin.put(base, json={"name": "par l'admin"})
        assert response.status_code == 200
        assert response.json()["notification"]["user_id"] == alice.user["id"]
        assert (await admin.get(f"{base}/deliveries")).json() == {"deliveries": []}
        assert (await admin.delete(base)).status_code == 200
