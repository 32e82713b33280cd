"""POST /auth/token: the OAuth2 password flow that Swagger UI's Authorize speaks, answering
as RFC 6749 says, refusing as the rest of the API does, and sharing /auth/login's checks,
throttle and audit trail."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from backup_api.config import Settings
from tests.accounts.test_api_tokens import FakeClock, bearer
from tests.support.apphelpers import PASSWORD, Api, running_app

BAD_CREDENTIALS = {"error": "Email ou mot de passe incorrect"}


async def test_the_password_flow_answers_a_bearer_token(
    client: httpx.AsyncClient, alice: Api
) -> None:
    # As Swagger UI sends it: a form with grant_type and an empty scope, and (its default
    # "basic" client authentication) empty client credentials in a Basic header.
    form = {
        "grant_type": "password",
        "username": "Alice@Example.com",
        "password": PASSWORD,
        "scope": "",
    }
    response = await client.post("/auth/token", data=form, headers={"Authorization": "Basic Og=="})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["user"]["email"] == "alice@example.com"
    assert (await client.get("/api/databases", headers=bearer(body["access_token"]))).is_success
    # grant_type may be left out; parameters the service does not know are ignored.
    response = await client.post(
        "/auth/token", data={"username": "alice@example.com", "password": PASSWORD, "x": "y"}
    )
    assert response.status_code == 200, response.text


async def test_refusals_are_the_apis(client: httpx.AsyncClient, alice: Api) -> None:
    for form in (
        {"username": "alice@example.com", "password": "pas-le-bon"},
        {"username": "personne@example.com", "password": PASSWORD},
    ):
        response = await client.post("/auth/token", data=form)
        assert response.status_code == 401
        assert response.json() == BAD_CREDENTIALS
        assert response.headers["www-authenticate"] == "Bearer"
    cases = [
        ({"password": PASSWORD}, "Données invalides: username: champ requis"),
        ({}, "Données invalides: champs requis: username, password"),
        (
            {"username": "alice@example.com", "password": PASSWORD, "grant_type": "code"},
            "Données invalides: grant_type: valeur invalide",
        ),
        (
            {"username": "a" * 321, "password": PASSWORD},
            "Données invalides: username: au plus 320 caractères",
        ),
    ]
    for form, message in cases:
        response = await client.post("/auth/token", data=form)
        assert response.status_code == 400, (form, response.text)
        assert response.json() == {"error": message}
    # JSON is not the flow's encoding: the form's fields are missing.
    response = await client.post(
        "/auth/token", json={"username": "alice@example.com", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Données invalides: champs requis: username, password"}


async def test_token_and_login_share_one_throttle(
    caplog: pytest.LogCaptureFixture, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(login_max_failures=3, login_lockout_seconds=60)
    async with running_app(settings) as (app, client):
        caplog.set_level(logging.INFO, logger="backup_api.audit")
        clock = FakeClock()
        app.state.backup_api.throttle.clock = clock
        await Api(client).signup("alice@example.com")
        wrong_json = {"email": "alice@example.com", "password": "pas-le-bon"}
        wrong_form = {"username": "alice@example.com", "password": "pas-le-bon"}
        assert (await client.post("/auth/login", json=wrong_json)).status_code == 401
        assert (await client.post("/auth/token", data=wrong_form)).status_code == 401
        assert (await client.post("/auth/login", json=wrong_json)).status_code == 401
        right_form = {"username": "alice@example.com", "password": PASSWORD}
        right_json = {"email": "alice@example.com", "password": PASSWORD}
        response = await client.post("/auth/token", data=right_form)
        assert response.status_code == 429
        assert response.json() == {"error": "Trop de tentatives, réessayez plus tard"}
        assert int(response.headers["retry-after"]) > 0
        assert (await client.post("/auth/login", json=right_json)).status_code == 429
        clock.now += 61
        assert (await client.post("/auth/token", data=right_form)).status_code == 200
        outcomes = [
            (e["via"], e["outcome"])
            for record in caplog.records
            if (e := getattr(record, "audit", None)) and e["action"] == "login"
        ]
        assert outcomes[-3:] == [
            ("token", "throttled"),
            ("login", "throttled"),
            ("token", "success"),
        ]


async def test_both_login_routes_are_audited_alike(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient, alice: Api
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="backup_api")
    await client.post("/auth/token", data={"username": "alice@example.com", "password": PASSWORD})
    await client.post("/auth/token", data={"username": "alice@example.com", "password": "faux-1"})
    await client.post("/auth/login", json={"email": "alice@example.com", "password": "faux-2"})
    # A password typed into the e-mail field is not written down.
    await client.post("/auth/token", data={"username": "faux-3-secret", "password": "x"})
    everything = caplog.text + repr([record.__dict__ for record in caplog.records])
    for secret in (PASSWORD, "faux-1", "faux-2", "faux-3-secret"):
        assert secret not in everything
    events = [
        (e["via"], e["outcome"], e.get("user_id"), e.get("email"))
        for record in caplog.records
        if (e := getattr(record, "audit", None)) and e["action"] == "login"
    ]
    alice_id = alice.user["id"]
    assert events == [
        ("token", "success", alice_id, None),
        ("token", "failure", alice_id, None),
        ("login", "failure", alice_id, None),
        ("token", "failure", None, "<invalid>"),
    ]


async def test_the_document_offers_the_password_flow(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/auth/token"]["post"]
    assert "security" not in operation
    content = operation["requestBody"]["content"]
    assert list(content) == ["application/x-www-form-urlencoded"]
    schema = content["application/x-www-form-urlencoded"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert {"username", "password"} <= set(schema["required"])
    success = operation["responses"]["200"]["content"]["application/json"]["schema"]
    model = spec["components"]["schemas"][success["$ref"].rsplit("/", 1)[1]]
    assert {"access_token", "token_type"} <= set(model["required"])
    assert set(operation["responses"]) >= {"200", "400", "401", "429", "500"}
