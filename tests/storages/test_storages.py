"""Storages through the API: creation, reading, partial updates, deletion and its
conditions, French validation, ownership on every route, a secret that never comes back;
and the databases' destinations (``storage_ids``, ``keep_local``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from backup_api.models import Backup, BackupCopy, Storage
from backup_api.security import decrypt_secret
from tests.support.apphelpers import Api, metadata_sql, unique_name

MISSING_ID = 2**31 - 1
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY-Secret!42"
OTHER_SECRET = "another-Secret/Key+99"
FORBIDDEN = {"error": "Accès non autorisé"}
NOT_FOUND = {"error": "Stockage introuvable"}


def storage_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "minio",
        "type": "s3",
        "endpoint": "http://127.0.0.1:9000",
        "region": "eu-west-3",
        "bucket": "backups",
        "prefix": "prod/backup-api",
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": SECRET,
        "path_style": True,
    }
    body.update(overrides)
    return body


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Api:
    """The first account (the only one that may make itself an admin): ask for it first."""
    return await Api(client).signup("root@example.com", role="admin")


async def add_storage(api: Api, **overrides: Any) -> dict[str, Any]:
    response = await api.post("/api/storages", json=storage_body(**overrides))
    assert response.status_code == 201, response.text
    storage: dict[str, Any] = response.json()["storage"]
    return storage


async def stored_secret(app: FastAPI, storage_id: int) -> str:
    table = Storage.__table__  # type: ignore[attr-defined]
    rows = await metadata_sql(app, select(table.c.secret_encrypted).where(table.c.id == storage_id))
    return decrypt_secret(app.state.backup_api.keys, rows[0].secret_encrypted)


async def test_create_read_list_update_delete(app: FastAPI, alice: Api) -> None:
    response = await alice.post("/api/storages", json=storage_body())
    assert response.status_code == 201, response.text
    assert response.json()["message"] == "Stockage ajouté avec succès"
    storage = response.json()["storage"]
    assert set(storage) == {
        "id",
        "name",
        "type",
        "endpoint",
        "region",
        "bucket",
        "prefix",
        "access_key_id",
        "path_style",
        "object_lock_days",
        "created_at",
        "updated_at",
        "user_id",
    }
    assert storage["user_id"] == alice.user["id"]
    assert storage["access_key_id"] == "AKIAEXAMPLE"
    assert storage["object_lock_days"] is None
    assert storage["created_at"].endswith("Z")
    # Encrypted at rest: the column holds a Fernet token, which the service's key opens.
    table = Storage.__table__  # type: ignore[attr-defined]
    rows = await metadata_sql(app, select(table.c.secret_encrypted))
    assert SECRET not in rows[0].secret_encrypted
    assert await stored_secret(app, storage["id"]) == SECRET

    url = f"/api/storages/{storage['id']}"
    assert (await alice.get(url)).json() == {"storage": storage}
    assert (await alice.get("/api/storages")).json() == {"storages": [storage]}

    # Partial: only what is sent changes; the secret stays when not sent.
    response = await alice.put(url, json={"name": "minio 2", "object_lock_days": 30})
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Stockage mis à jour avec succès"
    updated = response.json()["storage"]
    assert {
        k: v for k, v in updated.items() if k not in ("name", "object_lock_days", "updated_at")
    } == {k: v for k, v in storage.items() if k not in ("name", "object_lock_days", "updated_at")}
    assert (updated["name"], updated["object_lock_days"]) == ("minio 2", 30)
    assert await stored_secret(app, storage["id"]) == SECRET
    # null turns the lock off; other nulls are refused.
    response = await alice.put(url, json={"object_lock_days": None})
    assert response.json()["storage"]["object_lock_days"] is None
    response = await alice.put(url, json={"prefix": None})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Données invalides: prefix: null refusé: omettez le champ pour garder sa valeur"
    }
    # A new secret replaces the stored one.
    response = await alice.put(url, json={"secret_access_key": OTHER_SECRET})
    assert response.status_code == 200
    assert await stored_secret(app, storage["id"]) == OTHER_SECRET

    response = await alice.delete(url)
    assert response.status_code == 200
    assert response.json() == {"message": "Stockage supprimé avec succès"}
    assert (await alice.get(url)).status_code == 404
    assert (await alice.get("/api/storages")).json() == {"storages": []}


async def test_defaults(alice: Api) -> None:
    response = await alice.post(
        "/api/storages",
        json={"name": "public", "endpoint": "https://s3.example.com", "bucket": "open-data"},
    )
    assert response.status_code == 201, response.text
    storage = response.json()["storage"]
    assert storage["type"] == "s3"
    assert storage["region"] == "us-east-1"
    assert storage["prefix"] == ""
    assert storage["access_key_id"] == ""
    assert storage["path_style"] is True
    assert storage["object_lock_days"] is None


async def test_moving_a_storage_needs_its_secret(app: FastAPI, alice: Api) -> None:
    storage = await add_storage(alice)
    url = f"/api/storages/{storage['id']}"
    for change, named in (
        ({"endpoint": "https://s3.example.com"}, "endpoint"),
        ({"bucket": "elsewhere"}, "bucket"),
        ({"endpoint": "https://s3.example.com", "bucket": "elsewhere"}, "endpoint, bucket"),
    ):
        response = await alice.put(url, json=change)
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": f"Données invalides: secret_access_key: requis pour modifier {named}"
        }
    assert (await alice.get(url)).json()["storage"] == storage
    # The same values sent again are no move; with the secret, a move is accepted.
    response = await alice.put(url, json={"endpoint": storage["endpoint"], "bucket": "backups"})
    assert response.status_code == 200, response.text
    response = await alice.put(url, json={"bucket": "elsewhere", "secret_access_key": OTHER_SECRET})
    assert response.status_code == 200, response.text
    assert response.json()["storage"]["bucket"] == "elsewhere"
    assert await stored_secret(app, storage["id"]) == OTHER_SECRET


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("endpoint", "ftp://example.com", "URL http:// ou https:// attendue"),
        ("endpoint", "example.com", "URL http:// ou https:// attendue"),
        (
            "endpoint",
            "https://AKIA:hunter2@s3.example.com",
            "identifiants interdits dans l'URL: utilisez access_key_id",
        ),
        ("endpoint", "https://s3.example.com/?x=1", "paramètres de requête interdits dans l'URL"),
        ("endpoint", "https://s3.example.com/#top", "fragment interdit dans l'URL"),
        ("endpoint", "https://s3.example.com:99999", "URL invalide (hôte, port ou chemin)"),
        ("endpoint", "https://[12345::1]:9000", "adresse IPv6 invalide"),
        ("bucket", "ab", "au moins 3 caractères"),
        ("bucket", "a" * 64, "au plus 63 caractères"),
        (
            "bucket",
            "My_Bucket",
            "minuscules, chiffres, '-' et '.' entre des parties commençant et finissant par "
            "une lettre ou un chiffre",
        ),
        (
            "bucket",
            "a..b",
            "minuscules, chiffres, '-' et '.' entre des parties commençant et finissant par "
            "une lettre ou un chiffre",
        ),
        (
            "bucket",
            "192.168.1.10",
            "nom réservé par S3 (adresse IP, xn--, sthree-, -s3alias, --ol-s3)",
        ),
        ("bucket", "xn--abc", "nom réservé par S3 (adresse IP, xn--, sthree-, -s3alias, --ol-s3)"),
        ("prefix", "/absolute", "ne doit pas commencer par '/'"),
        ("prefix", "a/../b", "segments '.' et '..' interdits"),
        ("prefix", "..", "segments '.' et '..' interdits"),
        (
            "prefix",
            "a b",
            "lettres, chiffres, '.', '_' et '-', en segments séparés par un '/'",
        ),
        ("region", "", "au moins 1 caractères"),
        ("region", "eu west", "lettres, chiffres et '-' (ni au début ni à la fin) seulement"),
        ("region", "eu_west", "lettres, chiffres et '-' (ni au début ni à la fin) seulement"),
        ("region", "42", "pas seulement des chiffres"),
        ("region", "-eu", "lettres, chiffres et '-' (ni au début ni à la fin) seulement"),
        ("object_lock_days", 0, "valeur trop petite"),
        ("object_lock_days", 36501, "valeur trop grande"),
        ("object_lock_days", True, "entier attendu"),
        ("name", "", "au moins 1 caractères"),
        ("name", "   ", "ne doit pas être vide"),
        ("name", "x" * 101, "au plus 100 caractères"),
        ("type", "gcs", "valeur non autorisée"),
        ("path_style", "yes", "booléen attendu"),
    ],
)
async def test_validation_messages(alice: Api, field: str, value: Any, message: str) -> None:
    response = await alice.post("/api/storages", json=storage_body(**{field: value}))
    assert response.status_code == 400, response.text
    assert response.json() == {"error": f"Données invalides: {field}: {message}"}


async def test_accepted_shapes(alice: Api) -> None:
    for field, value in (
        ("endpoint", "http://[::1]:9000"),
        ("endpoint", "https://s3.fr-par.scw.cloud/"),
        ("endpoint", "http://minio:9000/s3"),
        ("bucket", "my.bucket-01"),
        ("prefix", "a/b/"),
        ("prefix", ".hidden/..x"),
        ("object_lock_days", 36500),
        ("object_lock_days", None),
    ):
        response = await alice.post("/api/storages", json=storage_body(**{field: value}))
        assert response.status_code == 201, (field, value, response.text)
        assert response.json()["storage"][field] == value


async def test_missing_fields_and_unknown_ones(alice: Api) -> None:
    response = await alice.post("/api/storages", json={"name": "x"})
    assert response.json() == {"error": "Données invalides: champs requis: endpoint, bucket"}
    response = await alice.post("/api/storages", json=storage_body(user_id=1))
    assert response.json() == {"error": "Données invalides: user_id: champ non autorisé"}
    storage = await add_storage(alice)
    response = await alice.put(f"/api/storages/{storage['id']}", json={"type": "s3"})
    assert response.json() == {"error": "Données invalides: type: champ non autorisé"}


async def test_the_secret_is_never_sent_back_nor_logged(
    app: FastAPI, alice: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    storage = await add_storage(alice)
    url = f"/api/storages/{storage['id']}"
    responses = [
        await alice.get(url),
        await alice.get("/api/storages"),
        await alice.put(url, json={"name": "renamed"}),
        await alice.put(url, json={"bucket": "other-bucket", "secret_access_key": SECRET}),
        # Refused bodies do not echo what they held either.
        await alice.post("/api/storages", json=storage_body(secret_access_key=SECRET + " \x01")),
        await alice.post(
            "/api/storages", json=storage_body(endpoint=f"https://AKIA:{SECRET}@s3.example.com")
        ),
        await alice.put(url, json={"endpoint": "https://s3.example.com", "unknown": SECRET}),
    ]
    for response in responses:
        assert SECRET not in response.text
        assert "secret" not in response.json().get("storage", {})
    assert "secret_access_key" not in responses[0].text
    assert SECRET not in caplog.text
    assert await stored_secret(app, storage["id"]) == SECRET


async def test_another_users_storage_is_403_and_a_missing_one_404(
    client: httpx.AsyncClient, admin: Api, alice: Api, bob: Api
) -> None:
    storage = await add_storage(alice)
    routes = [
        ("GET", "/api/storages/{id}", None),
        ("PUT", "/api/storages/{id}", {"name": "pris"}),
        ("DELETE", "/api/storages/{id}", None),
    ]
    for method, template, body in routes:
        url = template.format(id=storage["id"])
        response = await bob.request(method, url, json=body)
        assert (response.status_code, response.json()) == (403, FORBIDDEN), (method, url)
        response = await alice.request(method, template.format(id=MISSING_ID), json=body)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), (method, url)
        response = await alice.request(method, template.format(id="x"), json=body)
        assert response.status_code == 400, (method, url)
        response = await client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)
    for method, url in (("GET", "/api/storages"), ("POST", "/api/storages")):
        response = await client.request(method, url, json=storage_body())
        assert response.status_code == 401
    assert (await alice.get(f"/api/storages/{storage['id']}")).json()["storage"] == storage
    # Listings hold one's own; an admin sees and reaches every storage.
    assert (await bob.get("/api/storages")).json() == {"storages": []}
    assert [s["id"] for s in (await admin.get("/api/storages")).json()["storages"]] == [
        storage["id"]
    ]
    response = await admin.put(f"/api/storages/{storage['id']}", json={"name": "par l'admin"})
    assert response.status_code == 200, response.text
    assert response.json()["storage"]["user_id"] == alice.user["id"]


async def test_listing_pages(alice: Api) -> None:
    ids = [(await add_storage(alice, name=f"s{i}"))["id"] for i in range(3)]
    page = (await alice.get("/api/storages?limit=2&offset=1")).json()["storages"]
    assert [s["id"] for s in page] == ids[1:]


# --- databases' destinations


@pytest.fixture
def source(pg_server: Any) -> Any:
    name = unique_name("dest")
    pg_server.create_database(name)
    yield name
    pg_server.drop_database(name)


async def test_a_database_names_its_destinations(
    pg_server: Any, source: str, admin: Api, alice: Api, bob: Api
) -> None:
    first = await add_storage(alice, name="one")
    second = await add_storage(alice, name="two")
    theirs = await add_storage(bob, name="bob's")

    database = await alice.add_database(pg_server, source)
    assert (database["storage_ids"], database["keep_local"]) == ([], True)

    database = await alice.add_database(
        pg_server, source, storage_ids=[second["id"], first["id"]], keep_local=False
    )
    assert (database["storage_ids"], database["keep_local"]) == ([second["id"], first["id"]], False)
    url = f"/api/databases/{database['id']}"
    assert (await alice.get(url)).json()["database"] == database
    listed = (await alice.get("/api/databases")).json()["databases"]
    assert [(d["storage_ids"], d["keep_local"]) for d in listed] == [
        ([], True),
        ([second["id"], first["id"]], False),
    ]

    # PUT replaces the list (order kept) and leaves it alone when omitted.
    response = await alice.put(url, json={"storage_ids": [first["id"]]})
    assert response.status_code == 200, response.text
    assert response.json()["database"]["storage_ids"] == [first["id"]]
    response = await alice.put(url, json={"name": "renamed", "keep_local": True})
    assert (
        response.json()["database"]["storage_ids"],
        response.json()["database"]["keep_local"],
    ) == (
        [first["id"]],
        True,
    )
    response = await alice.put(url, json={"storage_ids": []})
    assert response.json()["database"]["storage_ids"] == []

    # Someone else's storage is 403, a missing one 404, a repeated one 400: nothing changes.
    before = (await alice.get(url)).json()
    for ids, status, error in (
        ([first["id"], theirs["id"]], 403, "Accès non autorisé"),
        ([MISSING_ID], 404, "Stockage introuvable"),
        (
            [first["id"], first["id"]],
            400,
            "Données invalides: storage_ids: un stockage ne peut figurer qu'une fois",
        ),
        ([0], 400, "Données invalides: storage_ids.0: valeur trop petite"),
        (list(range(1, 12)), 400, "Données invalides: storage_ids: au plus 10 éléments"),
    ):
        response = await alice.put(url, json={"storage_ids": ids})
        assert (response.status_code, response.json()) == (status, {"error": error}), ids
        body = {
            "name": "x",
            "type": "postgresql",
            "host": pg_server.host,
            "port": str(pg_server.port),
            "username": pg_server.user,
            "password": pg_server.password,
            "db_name": source,
            "storage_ids": ids,
        }
        response = await alice.post("/api/databases", json=body)
        assert (response.status_code, response.json()) == (status, {"error": error}), ids
    assert (await alice.get(url)).json() == before
    assert len((await alice.get("/api/databases")).json()["databases"]) == 2

    # An admin may set a database's destinations, but only to its owner's storages.
    response = await admin.put(url, json={"storage_ids": [theirs["id"]]})
    assert response.status_code == 400
    assert response.json() == {
        "error": f"Données invalides: storage_ids: le stockage {theirs['id']} n'appartient pas "
        "au propriétaire de la base"
    }
    response = await admin.put(url, json={"storage_ids": [second["id"]]})
    assert response.json()["database"]["storage_ids"] == [second["id"]]


async def test_a_backup_needs_a_destination(pg_server: Any, source: str, alice: Api) -> None:
    no_destination = {
        "error": "Données invalides: keep_local: une sauvegarde doit avoir au moins une "
        "destination (keep_local ou storage_ids)"
    }
    body = {
        "name": "x",
        "type": "postgresql",
        "host": pg_server.host,
        "port": str(pg_server.port),
        "username": pg_server.user,
        "password": pg_server.password,
        "db_name": source,
        "keep_local": False,
    }
    response = await alice.post("/api/databases", json=body)
    assert (response.status_code, response.json()) == (400, no_destination)
    response = await alice.post("/api/databases", json={**body, "keep_local": "no"})
    assert response.json() == {"error": "Données invalides: keep_local: booléen attendu"}

    storage = await add_storage(alice)
    database = await alice.add_database(pg_server, source)
    url = f"/api/databases/{database['id']}"
    response = await alice.put(url, json={"keep_local": False})
    assert (response.status_code, response.json()) == (400, no_destination)
    response = await alice.put(url, json={"keep_local": False, "storage_ids": [storage["id"]]})
    assert response.status_code == 200, response.text
    # Its last storage cannot go while there is no local copy either.
    response = await alice.put(url, json={"storage_ids": []})
    assert (response.status_code, response.json()) == (400, no_destination)
    response = await alice.put(url, json={"keep_local": None})
    assert response.status_code == 400
    assert (await alice.get(url)).json()["database"]["storage_ids"] == [storage["id"]]


async def test_deleting_a_storage_in_use_is_409(
    app: FastAPI, pg_server: Any, source: str, alice: Api
) -> None:
    storage = await add_storage(alice)
    url = f"/api/storages/{storage['id']}"
    one = await alice.add_database(pg_server, source, name="prod", storage_ids=[storage["id"]])
    two = await alice.add_database(pg_server, source, name="staging", storage_ids=[storage["id"]])
    response = await alice.delete(url)
    assert response.status_code == 409
    assert response.json() == {
        "error": "Impossible de supprimer le stockage: des bases de données y envoient leurs "
        "sauvegardes (prod, staging); retirez-le de leurs destinations"
    }
    await alice.put(f"/api/databases/{one['id']}", json={"storage_ids": []})
    # A deleted database no longer names it.
    assert (await alice.delete(f"/api/databases/{two['id']}")).status_code == 200

    # Copies it holds (complete, or whose deletion failed) keep it too; failed ones do not.
    now = datetime.now(UTC).replace(microsecond=0)
    backup_id = (
        await metadata_sql(
            app,
            insert(Backup.__table__)  # type: ignore[attr-defined]
            .values(
                filename="prod.zip",
                filepath="postgresql/prod.zip",
                size=10,
                status="completed",
                db_type="postgresql",
                db_name=source,
                user_id=alice.user["id"],
                created_at=now,
                updated_at=now,
                pinned=False,
                trigger="manual",
            )
            .returning(Backup.__table__.c.id),  # type: ignore[attr-defined]
        )
    )[0].id
    copies = BackupCopy.__table__  # type: ignore[attr-defined]

    async def copy(status: str) -> int:
        rows = await metadata_sql(
            app,
            insert(copies)
            .values(
                backup_id=backup_id,
                storage_id=storage["id"],
                kind="s3",
                storage_name="minio",
                location="s3://backups/prod/backup-api/postgresql/prod.zip",
                object_key="prod/backup-api/postgresql/prod.zip",
                status=status,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            .returning(copies.c.id),
        )
        return int(rows[0].id)

    failed = await copy("failed")
    held = [await copy("completed"), await copy("delete_failed")]
    response = await alice.delete(url)
    assert response.status_code == 409
    assert response.json() == {
        "error": "Impossible de supprimer le stockage: il contient encore des sauvegardes "
        "(2 copies); supprimez ces sauvegardes d'abord"
    }
    for copy_id in held:
        await metadata_sql(app, copies.delete().where(copies.c.id == copy_id))
    assert (await alice.delete(url)).status_code == 200
    # The failed copy's row stays, without its storage.
    rows = await metadata_sql(app, select(copies.c.storage_id).where(copies.c.id == failed))
    assert rows[0].storage_id is None


async def test_deleting_an_account_deletes_its_storages(
    app: FastAPI, pg_server: Any, source: str, admin: Api, alice: Api
) -> None:
    storage = await add_storage(alice)
    await alice.add_database(pg_server, source, storage_ids=[storage["id"]], keep_local=False)
    response = await admin.delete(f"/api/users/{alice.user['id']}")
    assert response.status_code == 200, response.text
    assert (await admin.get("/api/storages")).json() == {"storages": []}
    table = Storage.__table__  # type: ignore[attr-defined]
    assert await metadata_sql(app, select(table.c.id)) == []
