"""The dashboard's session without a browser: cookie flags, the CSRF token, the API that a
cookie never authorizes, the red line of a late database, and another account's records."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import Table, update

from backup_api.dashboard.web import CONTENT_SECURITY_POLICY, CSRF_REFUSED
from backup_api.models import Schedule
from tests.archiving.test_agecrypt import keygen
from tests.support.apphelpers import PASSWORD, Api, make_settings, metadata_sql, running_app
from tests.support.serverproc import free_port

SESSION = "backup_api_session"
SCHEDULES: Table = Schedule.__table__  # type: ignore[attr-defined]


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert match, page.text
    return match.group(1)


def _cookie_header(response: httpx.Response, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


async def _sign_in(client: httpx.AsyncClient, email: str) -> httpx.Response:
    form = await client.get("/login")
    response = await client.post(
        "/login", data={"csrf_token": _csrf(form), "email": email, "password": PASSWORD}
    )
    assert response.status_code == 303, response.text
    return response


async def test_cookie_flags_csrf_and_the_api_stays_bearer_only(
    client: httpx.AsyncClient, alice: Api
) -> None:
    form = await client.get("/login")
    assert form.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert form.headers["x-frame-options"] == "DENY"
    # Without the token, or with another one, the sign-in is refused before any check.
    for data in ({}, {"csrf_token": "0" * 64}):
        refused = await client.post(
            "/login", data={**data, "email": "alice@example.com", "password": PASSWORD}
        )
        assert refused.status_code == 403
        assert CSRF_REFUSED in refused.text
        assert SESSION not in refused.headers.get("set-cookie", "")

    signed_in = await _sign_in(client, "alice@example.com")
    cookie = _cookie_header(signed_in, SESSION).lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # plain HTTP here: a Secure cookie would never come back

    # Signed in, a form without the token changes nothing.
    before = (await alice.get("/api/databases")).json()["databases"]
    body = {"name": "x", "type": "postgresql", "host": "127.0.0.1", "port": "5432"}
    refused = await client.post("/databases", data={**body, "username": "u", "db_name": "d"})
    assert refused.status_code == 403
    assert (await alice.get("/api/databases")).json()["databases"] == before

    # The session cookie is sent with these requests, and authorizes none of them.
    assert SESSION in client.cookies
    for method, path in (("GET", "/api/databases"), ("GET", "/auth/me"), ("GET", "/api/backups")):
        response = await client.request(method, path)
        assert response.status_code == 401, path
        assert response.json() == {"error": "Authentification requise"}

    # htmx sends the token as a header: accepted as the form field is.
    page = await client.get("/")
    assert page.status_code == 200
    kept = client.cookies[SESSION]
    out = await client.post("/logout", headers={"X-CSRF-Token": _csrf(page)})
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert (await client.get("/")).headers["location"] == "/login"
    # A copy of the cookie kept from before the sign-out opens nothing either.
    client.cookies.set(SESSION, kept)
    assert (await client.get("/")).headers["location"] == "/login"
    # A fragment's poll is told to load the sign-in page as a whole.
    poll = await client.get("/backups/1/status", headers={"HX-Request": "true"})
    assert poll.status_code == 401
    assert poll.headers["hx-redirect"] == "/login"


async def test_the_cookie_is_secure_over_https(app: FastAPI, alice: Api) -> None:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4242))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as https:
        response = await _sign_in(https, "alice@example.com")
        assert "; secure" in _cookie_header(response, SESSION).lower()


async def test_late_databases_are_red_and_others_records_stay_hidden(
    app: FastAPI, client: httpx.AsyncClient, alice: Api, bob: Api
) -> None:
    # Nothing listens on this port: registered with a warning, never backed up.
    server = {"host": "127.0.0.1", "port": str(free_port()), "user": "u", "password": "secret-pw"}
    created = []
    for name in ("Planifiée", "Sans planification"):
        response = await alice.post(
            "/api/databases",
            json={
                "name": name,
                "type": "postgresql",
                "host": server["host"],
                "port": server["port"],
                "username": server["user"],
                "password": server["password"],
                "db_name": "app",
            },
        )
        assert response.status_code == 201, response.text
        created.append(response.json()["database"])
    scheduled, idle = created
    schedule = await alice.put(
        f"/api/databases/{scheduled['id']}/schedule", json={"cron": "0 * * * *"}
    )
    assert schedule.status_code == 200, schedule.text

    await _sign_in(client, "alice@example.com")
    # The overdue watch's rule: a new schedule gets 1.5 intervals before it is judged.
    overview = (await client.get("/")).text
    assert f'<tr class="" data-database="{scheduled["id"]}">' in overview
    assert "En retard" not in overview
    for minutes, late in ((80, False), (95, True)):
        created = datetime.now(UTC) - timedelta(minutes=minutes)
        await metadata_sql(
            app,
            update(SCHEDULES)
            .where(SCHEDULES.c.database_id == scheduled["id"])
            .values(created_at=created),
        )
        overview = (await client.get("/")).text
        row = f'<tr class="{"late" if late else ""}" data-database="{scheduled["id"]}">'
        assert row in overview, (minutes, overview)
    assert "En retard : aucune sauvegarde terminée" in overview
    assert f'<tr class="" data-database="{idle["id"]}">' in overview
    database_page = (await client.get(f"/databases/{scheduled['id']}")).text
    assert server["password"] not in database_page
    # The retention preview (an htmx fragment) names a bad value as the API does.
    preview = await client.get(
        f"/databases/{scheduled['id']}/retention/preview?keep_last=trois&keep_daily=7",
        headers={"HX-Request": "true"},
    )
    assert preview.status_code == 400
    assert preview.text.strip() == (
        '<p class="error" role="alert">Données invalides: keep_last: entier attendu</p>'
    )
    preview = await client.get(f"/databases/{scheduled['id']}/retention/preview?keep_daily=7")
    assert "Aucune sauvegarde ne serait supprimée (0 conservée)" in preview.text
    # Its owner deletes one; the other stays.
    deleted = await client.post(
        f"/databases/{idle['id']}/delete", data={"csrf_token": _csrf(await client.get("/"))}
    )
    assert deleted.status_code == 303
    assert (await alice.get(f"/api/databases/{idle['id']}")).status_code == 404
    assert f'data-database="{idle["id"]}"' not in (await client.get("/")).text

    client.cookies.clear()
    await _sign_in(client, "bob@example.com")
    overview = await client.get("/")
    assert "Planifiée" not in overview.text
    page = await client.get(f"/databases/{scheduled['id']}")
    assert page.status_code == 403
    assert "Accès non autorisé" in page.text
    assert "Planifiée" not in page.text
    changed = await client.post(
        f"/databases/{scheduled['id']}/schedule",
        data={"csrf_token": _csrf(overview), "cron": "* * * * *", "enabled": "on"},
    )
    assert changed.status_code == 403
    kept = await alice.get(f"/api/databases/{scheduled['id']}/schedule")
    assert kept.json()["schedule"]["cron"] == "0 * * * *"
    deleted = await client.post(
        f"/databases/{scheduled['id']}/delete", data={"csrf_token": _csrf(overview)}
    )
    assert deleted.status_code == 403
    assert (await alice.get(f"/api/databases/{scheduled['id']}")).status_code == 200
    missing = await client.get("/databases/999999")
    assert missing.status_code == 404
    assert (await client.get("/users")).status_code == 403


async def test_storages_are_added_tested_and_edited_without_their_secret(
    s3_server: Any, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    settings = make_settings(tmp_path, allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (_, client):
        alice = await Api(client).signup("alice@example.com")
        await _sign_in(client, "alice@example.com")
        page = await client.get("/storages")
        fields = {
            "name": "Bucket de test",
            "endpoint": s3_server.endpoint,
            "region": s3_server.region,
            "bucket": bucket,
            "access_key_id": s3_server.access_key_id,
        }
        added = await client.post(
            "/storages",
            data={
                **fields,
                "csrf_token": _csrf(page),
                "secret_access_key": s3_server.secret_access_key,
            },
        )
        assert added.status_code == 303, added.text
        listing = (await client.get("/storages")).text
        match = re.search(r'action="/storages/(\d+)/test"', listing)
        assert match, listing
        storage_id = match.group(1)

        tested = await client.post(f"/storages/{storage_id}/test", data={"csrf_token": _csrf(page)})
        assert "écriture, relecture et suppression d'un objet de test réussies" in tested.text
        form = await client.get(f"/storages/{storage_id}/edit")
        # The secret key is write-only: the edit form's field is empty.
        assert 'name="secret_access_key" type="password" autocomplete="new-password">' in form.text
        # An empty secret keeps the stored one: the renamed storage still works.
        edited = await client.post(
            f"/storages/{storage_id}/edit",
            data={**fields, "name": "Bucket renommé", "csrf_token": _csrf(form)},
        )
        assert edited.status_code == 303, edited.text
        tested = await client.post(f"/storages/{storage_id}/test", data={"csrf_token": _csrf(page)})
        assert "Bucket renommé : écriture, relecture" in tested.text
        # Moving it to another bucket needs the secret again, as the API says.
        moved = await client.post(
            f"/storages/{storage_id}/edit",
            data={**fields, "bucket": s3_server.make_bucket(), "csrf_token": _csrf(form)},
        )
        assert moved.status_code == 400
        assert "secret_access_key: requis pour modifier bucket" in moved.text
        for path in ("/storages", f"/storages/{storage_id}/edit"):
            assert s3_server.secret_access_key not in (await client.get(path)).text

        # A database's destinations, chosen in its edit form.
        database = await alice.post(
            "/api/databases",
            json={
                "name": "Base",
                "type": "postgresql",
                "host": "127.0.0.1",
                "port": str(free_port()),
                "username": "u",
                "password": "pw-secret",
                "db_name": "app",
            },
        )
        database_id = database.json()["database"]["id"]
        form = await client.get(f"/databases/{database_id}/edit")
        assert f'name="storage_ids" value="{storage_id}" >' in form.text
        assert "pw-secret" not in form.text
        common = {
            "name": "Base",
            "host": "127.0.0.1",
            "port": database.json()["database"]["port"],
            "username": "u",
            "db_name": "app",
            "csrf_token": _csrf(form),
        }
        none = await client.post(f"/databases/{database_id}/edit", data=common)
        assert none.status_code == 400
        assert "une sauvegarde doit avoir au moins une destination" in none.text
        chosen = await client.post(
            f"/databases/{database_id}/edit", data={**common, "storage_ids": storage_id}
        )
        assert chosen.status_code in (200, 303), chosen.text
        stored = (await alice.get(f"/api/databases/{database_id}")).json()["database"]
        assert stored["storage_ids"] == [int(storage_id)]
        assert stored["keep_local"] is False
        assert "Bucket renommé" in (await client.get(f"/databases/{database_id}")).text

        # The create form takes the destinations and the encryption at once.
        form = await client.get("/databases/new")
        fields = {
            "name": "Nouvelle",
            "type": "postgresql",
            "host": "127.0.0.1",
            "port": str(free_port()),
            "username": "u",
            "password": "pw-secret",
            "db_name": "app",
            "storage_ids": storage_id,
            "encryption": "passphrase",
            "passphrase": "court",
            "csrf_token": _csrf(form),
        }
        refused = await client.post("/databases", data=fields)
        assert refused.status_code == 400
        assert "encryption.passphrase: au moins 12 caractères" in refused.text
        assert "pw-secret" not in refused.text
        # What was chosen is kept in the form shown again, the storage still ticked.
        assert f'name="storage_ids" value="{storage_id}" checked>' in refused.text
        created = await client.post(
            "/databases", data={**fields, "passphrase": "une phrase secrète assez longue"}
        )
        assert created.status_code == 201, created.text  # shown with its unreachable warning
        listing = (await alice.get("/api/databases")).json()["databases"]
        new = next(d for d in listing if d["name"] == "Nouvelle")
        assert new["storage_ids"] == [int(storage_id)]
        assert new["keep_local"] is False
        assert new["encryption"] == {"mode": "passphrase"}
        assert "une phrase secrète assez longue" not in created.text


async def test_an_admin_manages_accounts_and_a_user_cannot(client: httpx.AsyncClient) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    carol = await Api(client).signup("carol@example.com")
    dave = await Api(client).signup("dave@example.com")
    await _sign_in(client, "root@example.com")
    page = await client.get("/users")
    assert page.status_code == 200
    for email in ("root@example.com", "carol@example.com", "dave@example.com"):
        assert email in page.text
    # No button acts on one's own account.
    assert f'action="/users/{admin.user["id"]}/' not in page.text

    carol_id = carol.user["id"]
    promoted = await client.post(
        f"/users/{carol_id}/role", data={"role": "admin", "csrf_token": _csrf(page)}
    )
    assert promoted.status_code == 303
    account = await admin.get(f"/api/users/{carol_id}")
    assert account.json()["user"]["role"] == "admin"
    wrong = await client.post(
        f"/users/{carol_id}/role", data={"role": "root", "csrf_token": _csrf(page)}
    )
    assert wrong.status_code == 400
    deleted = await client.post(f"/users/{carol_id}/delete", data={"csrf_token": _csrf(page)})
    assert deleted.status_code == 303
    assert (await admin.get(f"/api/users/{carol_id}")).status_code == 404

    client.cookies.clear()
    await _sign_in(client, "dave@example.com")
    overview = await client.get("/")
    assert (await client.get("/users")).status_code == 403
    for path, data in (
        (f"/users/{admin.user['id']}/delete", {}),
        (f"/users/{dave.user['id']}/role", {"role": "admin"}),
    ):
        refused = await client.post(path, data={**data, "csrf_token": _csrf(overview)})
        assert refused.status_code == 403
        assert "Action réservée aux administrateurs" in refused.text
    assert (await admin.get(f"/api/users/{dave.user['id']}")).json()["user"]["role"] == "user"


async def test_wrong_passwords_are_throttled_as_the_apis_logins(
    client: httpx.AsyncClient, alice: Api
) -> None:
    form = await client.get("/login")
    wrong = {"csrf_token": _csrf(form), "email": "alice@example.com", "password": "pas-le-bon"}
    for _ in range(5):
        refused = await client.post("/login", data=wrong)
        assert refused.status_code == 401
        assert "Email ou mot de passe incorrect" in refused.text
        # The e-mail stays in the form; the password typed never comes back.
        assert 'value="alice@example.com"' in refused.text
        assert "pas-le-bon" not in refused.text
    throttled = await client.post("/login", data={**wrong, "password": PASSWORD})
    assert throttled.status_code == 429
    assert SESSION not in throttled.headers.get("set-cookie", "")
    # The API's login counts the same failures.
    api = await client.post(
        "/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
    )
    assert api.status_code == 429


async def test_a_databases_encryption_is_set_in_its_edit_form(
    client: httpx.AsyncClient, alice: Api, tmp_path: Path
) -> None:
    created = await alice.post(
        "/api/databases",
        json={
            "name": "Chiffrée",
            "type": "postgresql",
            "host": "127.0.0.1",
            "port": str(free_port()),
            "username": "u",
            "password": "pw",
            "db_name": "app",
        },
    )
    database = created.json()["database"]
    path = f"/databases/{database['id']}/edit"
    await _sign_in(client, "alice@example.com")
    form = await client.get(path)
    common = {
        "name": "Chiffrée",
        "host": "127.0.0.1",
        "port": database["port"],
        "username": "u",
        "db_name": "app",
        "keep_local": "on",
        "csrf_token": _csrf(form),
    }

    async def encryption_after(**fields: str) -> Any:
        response = await client.post(path, data={**common, **fields})
        assert response.status_code in (200, 303), response.text
        api = await alice.get(f"/api/databases/{database['id']}")
        return api.json()["database"]["encryption"]

    passphrase = "une phrase secrète assez longue"
    assert await encryption_after(encryption="passphrase", passphrase=passphrase) == {
        "mode": "passphrase"
    }
    assert passphrase not in (await client.get(path)).text
    # Left as it is when the form says "unchanged".
    assert await encryption_after(encryption="keep") == {"mode": "passphrase"}
    _, recipient = keygen(tmp_path)
    assert await encryption_after(encryption="recipients", recipients=f"{recipient}\n") == {
        "mode": "recipients",
        "recipients": [recipient],
    }
    # The public keys come back into the form, to be edited.
    assert recipient in (await client.get(path)).text
    refused = await client.post(
        path, data={**common, "encryption": "passphrase", "passphrase": "court"}
    )
    assert refused.status_code == 400
    assert "Données invalides: encryption.passphrase: au moins 12 caractères" in refused.text
    assert await encryption_after(encryption="none") is None


async def test_a_session_past_half_its_life_is_renewed_and_its_forms_stay_valid(
    app: FastAPI, client: httpx.AsyncClient, alice: Api
) -> None:
    await _sign_in(client, "alice@example.com")
    fresh = await client.get("/")
    # A token well within its lifetime: nothing new.
    assert SESSION not in fresh.headers.get("set-cookie", "")
    form_token = _csrf(fresh)

    # The same account's token, with five minutes left of its hour.
    (token_key,) = (
        await metadata_sql(app, "SELECT token_key FROM users WHERE id = :id", id=alice.user["id"])
    )[0]
    now = int(time.time())
    old = jwt.encode(
        {
            "sub": str(alice.user["id"]),
            "iat": now - 3300,
            "exp": now + 300,
            "typ": "access",
            "key": token_key,
        },
        app.state.backup_api.keys.jwt_secret,
        algorithm="HS256",
    )
    client.cookies.clear()
    page = await client.get("/", headers={"Cookie": f"{SESSION}={old}"})
    assert page.status_code == 200
    renewed = _cookie_header(page, SESSION).split(";")[0].removeprefix(f"{SESSION}=")
    assert renewed != old
    claims = jwt.decode(renewed, options={"verify_signature": False})
    assert claims["exp"] >= now + 3000
    # A form shown before the renewal still posts.
    out = await client.post("/logout", data={"csrf_token": form_token})
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert SESSION not in client.cookies
