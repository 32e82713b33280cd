"""Request validation a newcomer meets: engine aliases, every missing field at once,
addresses on private domains, and nulls in an update."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_errors import UNSUPPORTED_ORACLE, VALID_DB, assert_error
from tests.support.apphelpers import PASSWORD, Api


async def test_mariadb_is_an_alias_stored_as_mysql(alice: Api) -> None:
    response = await alice.post(
        "/api/databases", json={**VALID_DB, "type": "mariadb", "port": "3306"}
    )
    assert response.status_code == 201, response.text
    database = response.json()["database"]
    assert database["type"] == "mysql"
    assert (await alice.get(f"/api/databases/{database['id']}")).json()["database"][
        "type"
    ] == "mysql"
    other = (await alice.post("/api/databases", json=VALID_DB)).json()["database"]
    response = await alice.put(
        f"/api/databases/{other['id']}", json={"type": "mariadb", "password": "motdepasse"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["database"]["type"] == "mysql"


async def test_unsupported_type_lists_the_supported_ones(alice: Api) -> None:
    for value in ("oracle", "MariaDB", ""):
        response = await alice.post("/api/databases", json={**VALID_DB, "type": value})
        assert response.status_code == 400
        assert response.json() == {
            "error": f"type de base de données non supporté: {value}",
            "supported_types": ["mysql", "postgresql"],
        }
    assert (await alice.get("/api/databases")).json()["databases"] == []
    created = (await alice.post("/api/databases", json=VALID_DB)).json()["database"]
    response = await alice.put(f"/api/databases/{created['id']}", json={"type": "oracle"})
    assert response.status_code == 400
    assert response.json() == UNSUPPORTED_ORACLE
    assert (await alice.get(f"/api/databases/{created['id']}")).json()["database"][
        "type"
    ] == "postgresql"


@pytest.mark.parametrize(
    ("url", "body", "message"),
    [
        (
            "/api/databases",
            {},
            "Données invalides: champs requis: name, type, host, port, username, db_name",
        ),
        (
            "/api/databases",
            {"name": "x", "port": "abc", "host": "db.example.com"},
            "Données invalides: champs requis: type, username, db_name; "
            "port: port invalide (1-65535)",
        ),
        ("/api/databases", {**VALID_DB, "db_name": None}, "Données invalides: db_name: "),
        ("/auth/register", {}, "Données invalides: champs requis: email, password"),
        ("/auth/register", {"email": "a@example.com"}, "Données invalides: password: champ requis"),
        (
            "/auth/register",
            {"email": "nope", "password": "x", "role": "chef"},
            "Données invalides: email: adresse e-mail invalide; password: au moins 8 "
            "caractères; role: valeur non autorisée",
        ),
    ],
)
async def test_every_invalid_field_is_reported_at_once(
    alice: Api, url: str, body: dict[str, Any], message: str
) -> None:
    response = await alice.post(url, json=body)
    assert_error(response, 400)
    assert response.json()["error"].startswith(message), response.json()
    if message.endswith(": "):
        assert response.json()["error"] == message + "chaîne attendue"


@pytest.mark.parametrize(
    "email", ["ops@corp.local", "root@localhost", "admin@backup.internal", "Ops@Mail.Corp.Local"]
)
async def test_addresses_on_private_domains_are_accepted(
    client: httpx.AsyncClient, email: str
) -> None:
    response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert response.json()["user"]["email"] == email.lower()
    response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "email",
    [
        "pas-un-email",
        "root@",
        "@localhost",
        "root@localhost.",
        "a b@corp.local",
        "x@-corp.local",
        "x@corp..local",
        "x@corp_1.local",
        "x@host.invalid",
        "x@service.onion",
        "x@[127.0.0.1]",
        "Root <root@localhost>",
    ],
)
async def test_garbage_addresses_are_still_refused(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.json() == {"error": "Données invalides: email: adresse e-mail invalide"}
    assert response.status_code == 400


async def test_null_in_an_update_is_refused_and_changes_nothing(alice: Api) -> None:
    created = (await alice.post("/api/databases", json=VALID_DB)).json()["database"]
    url = f"/api/databases/{created['id']}"
    for body, fields in [
        ({"name": None}, ["name"]),
        ({"password": None}, ["password"]),
        ({"name": "Nouveau nom", "port": None, "db_name": None}, ["port", "db_name"]),
    ]:
        response = await alice.put(url, json=body)
        assert_error(response, 400)
        message = response.json()["error"]
        for field in fields:
            assert f"{field}: null refusé: omettez le champ pour garder sa valeur" in message
    assert (await alice.get(url)).json()["database"] == created
    # Omitting a field keeps it; an empty body changes nothing.
    response = await alice.put(url, json={})
    assert response.status_code == 200
    assert response.json()["database"]["name"] == created["name"]
