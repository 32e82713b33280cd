"""Error statuses and bodies of the contract, per router: always {"error": ...}, never 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.apphelpers import PASSWORD, Api


def assert_error(response: httpx.Response, status: int, contains: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"], body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert contains in body["error"], body


VALID_DB: dict[str, Any] = {
    "name": "Ma Base",
    "type": "postgresql",
    "host": "localhost",
    # Nothing listens there: registering checks the server when it answers, and the
    # machine's own database services must not be the ones answering.
    "port": "1",
    "username": "postgres",
    "password": "motdepasse",
    "db_name": "ma_base",
}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "pas-un-email", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": "court"}, "password"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "role": "superuser"}, "role"),
        ({"email": "a@example.com", "password": PASSWORD, "user_id": 7}, "user_id"),
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": ["a@example.com"], "password": PASSWORD}, "email"),
    ],
)
async def test_register_validation(client: httpx.AsyncClient, body: Any, field: str) -> None:
    response = await client.post("/auth/register", json=body)
    assert_error(response, 400, field)
    assert (
        await client.post("/auth/login", json={"email": "a@example.com", "password": PASSWORD})
    ).status_code == 401


async def test_validation_messages_say_what_is_wrong(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json={"email": "a@example.com", "password": "x"})
    assert response.json() == {"error": "Données invalides: password: au moins 8 caractères"}
    response = await client.post("/auth/register", json={"email": "a@-b", "password": PASSWORD})
    assert response.json() == {"error": "Données invalides: email: adresse e-mail invalide"}


async def test_register_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "JSON")
    response = await client.post(
        "/auth/register", content=b"[]", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


async def test_register_conflicts_and_roles(client: httpx.AsyncClient) -> None:
    first = await client.post(
        "/auth/register", json={"email": "Admin@Example.com", "password": PASSWORD, "role": "admin"}
    )
    assert first.status_code == 201
    assert first.json()["user"]["role"] == "admin"
    assert first.json()["user"]["email"] == "admin@example.com"
    duplicate = await client.post(
        "/auth/register", json={"email": "ADMIN@example.com", "password": PASSWORD}
    )
    assert_error(duplicate, 409)
    # Self-promotion is refused once an account exists.
    response = await client.post(
        "/auth/register", json={"email": "eve@example.com", "password": PASSWORD, "role": "admin"}
    )
    assert_error(response, 403)
    assert (
        await client.post("/auth/login", json={"email": "eve@example.com", "password": PASSWORD})
    ).status_code == 401
    # ...unless an admin asks for it.
    login = await client.post(
        "/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
    )
    token = login.json()["token"]
    response = await client.post(
        "/auth/register",
        json={"email": "second-admin@example.com", "password": PASSWORD, "role": "admin"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201
    assert response.json()["user"]["role"] == "admin"


async def test_long_password_and_login_errors(client: httpx.AsyncClient) -> None:
    long_password = "p" * 100
    response = await client.post(
        "/auth/register", json={"email": "long@example.com", "password": long_password}
    )
    assert response.status_code == 201
    ok = await client.post(
        "/auth/login", json={"email": "long@example.com", "password": long_password}
    )
    assert ok.status_code == 200
    wrong = await client.post(
        "/auth/login", json={"email": "long@example.com", "password": "p" * 99}
    )
    unknown = await client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "p" * 99}
    )
    assert_error(wrong, 401)
    assert wrong.json() == unknown.json()
    assert wrong.status_code == unknown.status_code


UNSUPPORTED_ORACLE = {
    "error": "type de base de données non supporté: oracle",
    "supported_types": ["mysql", "postgresql"],
}


async def test_database_router_errors(alice: Api, bob: Api) -> None:
    response = await alice.post("/api/databases", json={**VALID_DB, "type": "oracle"})
    assert response.status_code == 400
    assert response.json() == UNSUPPORTED_ORACLE
    for field, value in [
        ("port", "70000"),
        ("port", "abc"),
        ("port", True),
        ("host", ""),
        ("name", ""),
    ]:
        response = await alice.post("/api/databases", json={**VALID_DB, field: value})
        assert_error(response, 400, field)
    response = await alice.post(
        "/api/databases", json={k: v for k, v in VALID_DB.items() if k != "db_name"}
    )
    assert_error(response, 400, "db_name")
    response = await alice.post("/api/databases", json={**VALID_DB, "user_id": bob.user["id"]})
    assert_error(response, 400, "user_id")
    response = await alice.client.post("/api/databases", json=VALID_DB)
    assert_error(response, 401)
    response = await alice.get("/api/databases/999999")
    assert_error(response, 404)
    response = await alice.get("/api/databases/abc")
    assert_error(response, 400)
    response = await alice.get("/api/databases/0")
    assert_error(response, 400)
    response = await alice.get("/api/databases?limit=0")
    assert_error(response, 400, "limit")
    response = await alice.get("/api/databases?limit=100000")
    assert_error(response, 400, "limit")
    created = (await alice.post("/api/databases", json=VALID_DB)).json()["database"]
    response = await alice.put(f"/api/databases/{created['id']}", json={"type": "oracle"})
    assert response.json() == UNSUPPORTED_ORACLE
    response = await alice.put(f"/api/databases/{created['id']}", json={"user_id": 2})
    assert_error(response, 400, "user_id")
    assert (await alice.get(f"/api/databases/{created['id']}")).json()["database"][
        "user_id"
    ] == alice.user["id"]


async def test_backup_router_errors(alice: Api) -> None:
    response = await alice.post("/api/backups/database/424242")
    assert_error(response, 404)
    response = await alice.get("/api/backups/424242")
    assert_error(response, 404)
    response = await alice.get("/api/backups/424242/download")
    assert_error(response, 404)
    response = await alice.delete("/api/backups/424242")
    assert_error(response, 404)
    response = await alice.client.get("/api/backups")
    assert_error(response, 401)
    response = await alice.get("/api/backups?offset=-1")
    assert_error(response, 400, "offset")
    response = await alice.get("/api/backups/99999999999999999999")
    assert_error(response, 400)


async def test_restore_router_errors(alice: Api) -> None:
    response = await alice.post("/api/backups/424242/restore")
    assert_error(response, 404)
    response = await alice.get("/api/restores/424242")
    assert_error(response, 404)
    response = await alice.client.get("/api/restores")
    assert_error(response, 401)


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/nothing-here"), 404)
    assert_error(await client.patch("/auth/login"), 405)


async def test_unexpected_error_is_a_generic_500(app: FastAPI, alice: Api) -> None:
    async def explode() -> None:
        raise RuntimeError("secret-detail-42")

    app.add_api_route("/api/explode", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/api/explode")
    assert_error(response, 500, "Erreur interne du serveur")
    assert "secret-detail-42" not in response.text
    assert response.headers["x-request-id"] in response.json()["error"]
