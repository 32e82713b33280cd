"""Ids out of range, in a path or in a body, are a French 400: never an integer overflow
in the metadata database (a 500)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backup_api.config import Settings
from backup_api.main import create_app
from backup_api.models import MAX_ID
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.sample_data import create_filled

OUT_OF_RANGE = {
    "zero": "0",
    "negative": "-1",
    "int32 + 1": str(MAX_ID + 1),
    "int64 + 1": "9223372036854775808",
    "int64 - 1": str(2**63 - 1),
    "huge": "1" + "0" * 40,
}

#: A valid body for the routes that need one, so that only the path is wrong.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/databases/{database_id}"): {"name": "Nouveau nom"},
    ("PUT", "/api/users/{user_id}/role"): {"role": "user"},
    ("POST", "/api/backups/{backup_id}/restore"): {"database_id": 1},
}


def _routes_with_ids() -> list[tuple[str, str]]:
    """Every operation with a parameter in its path, as the OpenAPI document lists them."""
    paths = create_app(Settings()).openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if "{" in path
        for method in sorted(operations)
    ]


ROUTES = _routes_with_ids()


def test_every_id_route_is_covered() -> None:
    # A new route with an id in its path joins the test below by itself; this guards
    # against the listing above silently finding nothing.
    paths = {path for _, path in ROUTES}
    assert {
        "/api/databases/{database_id}",
        "/api/backups/{backup_id}",
        "/api/backups/database/{database_id}",
        "/api/backups/{backup_id}/restore",
        "/api/restores/{restore_id}",
        "/api/users/{user_id}",
    } <= paths
    assert all(
        re.fullmatch(r"\{\w+_id\}", p) for _, path in ROUTES for p in re.findall(r"\{[^}]*\}", path)
    )


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """One application for the whole module (each case is one request); its admin reaches
    every route, so the path is the only thing that can be refused."""
    async with running_app(make_settings(tmp_path_factory.mktemp("ids"))) as (_, client):
        yield await Api(client).signup("root@example.com", role="admin")


@pytest.fixture(scope="module")
async def completed_backup(pg_server: Any, admin: Api) -> AsyncIterator[dict[str, Any]]:
    source = unique_name("ids")
    create_filled(pg_server, source)
    try:
        database = await admin.add_database(pg_server, source)
        backup = await admin.wait_backup((await admin.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed"
        yield backup
    finally:
        pg_server.drop_database(source)


@pytest.mark.parametrize("value", list(OUT_OF_RANGE.values()), ids=list(OUT_OF_RANGE))
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_path_ids_out_of_range_are_400(
    admin: Api, method: str, path: str, value: str
) -> None:
    names = re.findall(r"\{(\w+)\}", path)
    url = re.sub(r"\{\w+\}", value, path)
    body = BODIES.get((method, path))
    response = await admin.request(method, url, **({"json": body} if body is not None else {}))
    assert response.status_code == 400, (method, url, response.status_code, response.text)
    assert list(response.json()) == ["error"]
    message = response.json()["error"]
    assert message.startswith("Données invalides: "), message
    assert any(name in message for name in names), message


BODY_IDS = {
    "overflow (the report)": 9223372036854775808,
    "int32 + 1": MAX_ID + 1,
    "zero": 0,
    "negative": -1,
    "huge": 10**40,
    "boolean": True,
}


@pytest.mark.parametrize("value", list(BODY_IDS.values()), ids=list(BODY_IDS))
async def test_body_ids_out_of_range_are_400(
    admin: Api, completed_backup: dict[str, Any], value: object
) -> None:
    url = f"/api/backups/{completed_backup['id']}/restore"
    response = await admin.post(url, json={"database_id": value})
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"]
    assert response.json()["error"].startswith("Données invalides: database_id: ")
    assert (await admin.get("/api/restores")).json()["restores"] == []
    # The largest id is still an id: it names no database.
    response = await admin.post(url, json={"database_id": MAX_ID})
    assert response.status_code == 404, response.text
