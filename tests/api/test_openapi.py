"""The OpenAPI document says what the server does: bounds, security, methods, statuses and
the real French error messages, each with when it is sent."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from backup_api.config import Settings
from backup_api.main import create_app
from backup_api.models import DatabaseCreate, StorageCreate, UserRegister
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.sample_data import create_filled

SRC = Path(__file__).resolve().parents[2] / "src" / "backup_api"
DOCUMENTATION_MODULES = {SRC / "routers" / "responses.py", SRC / "openapi.py"}
FRENCH = re.compile(r"[àâçéèêëîïôûùüÿœæ]", re.IGNORECASE)
MISSING_ID = 2**31 - 1
# Either scheme: e-mail and password through the OAuth2 password flow, or a bearer token.
SECURED = [{"OAuth2Password": []}, {"HTTPBearer": []}]


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def documented_errors(operation: dict[str, Any], status: int) -> set[str]:
    content = operation["responses"].get(str(status), {}).get("content", {})
    examples = content.get("application/json", {}).get("examples", {})
    return {example["value"]["error"] for example in examples.values()}


async def test_page_size_maximum_is_the_servers(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, max_page_size=50)) as (_, client):
        spec = (await client.get("/openapi.json")).json()
        api = await Api(client).signup()
        listings = [
            (path, operation)
            for method, path, operation in operations(spec)
            if any(p["name"] == "limit" for p in operation.get("parameters", []))
        ]
        assert len(listings) >= 5
        for path, operation in listings:
            limit = next(p for p in operation["parameters"] if p["name"] == "limit")
            assert limit["schema"]["maximum"] == 50, path
            assert limit["schema"]["type"] == "integer", path
        assert (await api.get("/api/backups?limit=50")).status_code == 200
        refused = await api.get("/api/backups?limit=51")
        assert refused.status_code == 400
        assert refused.json()["error"] in documented_errors(listings[0][1], 400)


async def test_register_does_not_require_a_token(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    register = spec["paths"]["/auth/register"]["post"]
    assert register["security"] == [{}, *SECURED]
    assert documented_errors(register, 401) == {"Token invalide ou expiré"}
    assert "security" not in spec["paths"]["/auth/login"]["post"]
    for method, path, operation in operations(spec):
        if path.startswith("/api/"):
            assert operation["security"] == SECURED, (method, path)


async def test_405_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, methods in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", "1", path)
        documented = {method.upper() for method in methods}
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} - documented:
            response = await client.request(method, url)
            assert response.status_code == 405, (method, url)
            assert response.json() == {"error": "Méthode non autorisée"}
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == documented, (method, url, allowed)


async def test_statuses_are_listed_where_they_can_happen(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    throttled = {(m, p) for m, p, op in operations(spec) if "429" in op["responses"]}
    assert {("post", "/auth/login"), ("post", "/api/backups/database/{database_id}")} <= throttled
    assert not {(m, p) for m, p in throttled if m == "get"}
    for method, path, operation in operations(spec):
        assert "422" not in operation["responses"], (method, path)
        assert {"400", "500"} <= operation["responses"].keys(), (method, path)
        if operation.get("security") == SECURED:
            assert documented_errors(operation, 401) == {
                "Authentification requise",
                "Token invalide ou expiré",
            }
            assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]
        if "429" in operation["responses"]:
            assert operation["responses"]["429"]["headers"]["Retry-After"]["required"]


async def test_timestamps_are_date_times(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    stamps = {
        (name, field): schema
        for name, model in schemas.items()
        for field, schema in model.get("properties", {}).items()
        if field.endswith("_at")
    }
    assert len(stamps) >= 10
    for key, schema in stamps.items():
        formats = {
            b.get("format") for b in schema.get("anyOf", [schema]) if b.get("type") != "null"
        }
        assert formats == {"date-time"}, key


async def test_prose_is_english_and_every_operation_has_a_summary(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()

    def prose(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("summary", "description") and isinstance(value, str):
                    # Error examples are quoted in descriptions between backquotes.
                    yield re.sub(r"`[^`]*`", "", value)
                elif key != "value":
                    yield from prose(value)
        elif isinstance(node, list):
            for item in node:
                yield from prose(item)

    texts = list(prose(spec))
    assert len(texts) > 100
    french = [text for text in texts if FRENCH.search(text)]
    assert not french, french
    for method, path, operation in operations(spec):
        assert operation.get("summary"), (method, path)
        assert operation.get("description"), (method, path)


def _source_messages() -> list[re.Pattern[str]]:
    """Every string and f-string of the service's code, as a pattern (``{...}`` = ``.+``)."""
    patterns = []
    for file in SRC.rglob("*.py"):
        if file in DOCUMENTATION_MODULES or "migrations" in file.parts:
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                patterns.append(re.compile(re.escape(node.value)))
            elif isinstance(node, ast.JoinedStr):
                parts = [
                    re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values
                ]
                patterns.append(re.compile("".join(parts)))
    return patterns


async def test_every_documented_error_is_a_message_the_code_sends(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    sources = _source_messages()
    documented = {
        (status, message)
        for _, _, operation in operations(spec)
        for status in operation["responses"]
        if status >= "400"
        for message in documented_errors(operation, int(status))
    }
    assert len(documented) > 30
    for status, message in documented:
        assert any(p.fullmatch(message) for p in sources), (status, message)


async def test_errors_the_server_sends_are_the_documented_ones(
    pg_server: Any, tmp_path: Path
) -> None:
    """Each route, asked without a token, with a malformed id, with an id that does not
    exist, and for someone else's resource, answers one of the messages it documents."""
    source = unique_name("doc")
    create_filled(pg_server, source)
    async with running_app(make_settings(tmp_path)) as (_, client):
        spec = (await client.get("/openapi.json")).json()
        admin = await Api(client).signup("root@example.com", role="admin")
        owner = await Api(client).signup("owner@example.com")
        stranger = await Api(client).signup("stranger@example.com")
        database = await owner.add_database(pg_server, source)
        backup = await owner.wait_backup((await owner.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        response = await owner.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        restore = await owner.wait_restore(response.json()["restore"]["id"])
        token = await owner.post("/api/tokens", json={"name": "ci"})
        assert token.status_code == 201, token.text
        storage = await owner.post(
            "/api/storages",
            json={"name": "s3", "endpoint": "http://127.0.0.1:9", "bucket": "backups"},
        )
        assert storage.status_code == 201, storage.text
        # A public address (a non-admin's must be): never contacted by this test.
        notification = await owner.post(
            "/api/notifications",
            json={
                "name": "hook",
                "type": "webhook",
                "url": "https://1.1.1.1/hook",
                "events": ["backup.failed"],
            },
        )
        assert notification.status_code == 201, notification.text
        scratch_name = unique_name("doc_scratch")
        pg_server.create_database(scratch_name)
        scratch = await owner.add_database(
            pg_server, scratch_name, scratch=True, confirm=scratch_name
        )
        response = await owner.post(
            f"/api/backups/{backup['id']}/drill", json={"target_database_id": scratch["id"]}
        )
        assert response.status_code == 202, response.text
        drill = await owner._wait(
            f"/api/drills/{response.json()['drill']['id']}", "drill", timeout=60
        )
        ids = {
            "drill_id": drill["id"],
            "database_id": database["id"],
            "backup_id": backup["id"],
            "restore_id": restore["id"],
            "user_id": owner.user["id"],
            "token_id": token.json()["token"]["id"],
            "storage_id": storage.json()["storage"]["id"],
            "notification_id": notification.json()["notification"]["id"],
        }
        checked: dict[int, int] = {}
        # A valid body where one is required, so that only the case under test can fail.
        bodies = {
            ("PUT", "/api/users/{user_id}/role"): {"role": "user"},
            ("PUT", "/api/backups/{backup_id}"): {"pinned": True},
            ("POST", "/api/databases/{database_id}/retention/preview"): {"keep_last": 1},
            ("PUT", "/api/databases/{database_id}/schedule"): {"cron": "0 3 * * *"},
            ("PUT", "/api/databases/{database_id}/drill"): {
                "cron": "0 3 * * *",
                "target_database_id": scratch["id"],
            },
        }

        async def check(
            api: Api | None, method: str, url: str, operation: Any, status: int
        ) -> None:
            body = bodies.get((method, path), {} if method == "PUT" else None)
            send = api.request if api else client.request
            response = await send(method, url, json=body)
            assert response.status_code == status, (method, url, response.text)
            assert response.json()["error"] in documented_errors(operation, status), (
                method,
                url,
                response.text,
            )
            checked[status] = checked.get(status, 0) + 1

        for method, path, operation in operations(spec):
            method = method.upper()
            params = re.findall(r"\{([^}]+)\}", path)
            real = path.format(**ids)
            if operation.get("security") == SECURED:
                await check(None, method, real, operation, 401)
            if not params:
                continue
            await check(admin, method, path.format(**dict.fromkeys(params, "x")), operation, 400)
            missing = path.format(**dict.fromkeys(params, MISSING_ID))
            await check(admin, method, missing, operation, 404)
            # Refused before anything is read or changed, whatever the method.
            if path.startswith("/api/users"):
                await check(owner, method, real, operation, 403)
            else:
                await check(stranger, method, real, operation, 403)
        assert checked[401] >= 15, checked
        assert checked[404] >= 10, checked
        assert checked[403] >= 10, checked
    pg_server.drop_database(source)
    pg_server.drop_database(scratch_name)


async def test_policy_refusals_are_documented(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allowed_db_hosts=["10.0.0.0/8"])
    async with running_app(settings) as (_, client):
        spec = (await client.get("/openapi.json")).json()
        operation = spec["paths"]["/api/databases"]["post"]
        admin = await Api(client).signup("root@example.com", role="admin")
        body = {
            "name": "x",
            "type": "postgresql",
            "host": "127.0.0.1",
            "port": "5432",
            "username": "u",
            "db_name": "d",
        }
        refused = await admin.post("/api/databases", json=body)
        assert refused.status_code == 403
        assert refused.json() == {"error": "hôte non autorisé par la configuration: 127.0.0.1"}
        assert any(m.startswith("hôte non autorisé") for m in documented_errors(operation, 403))
        response = await admin.delete(f"/api/users/{admin.user['id']}")
        assert response.status_code == 409
        delete_user = spec["paths"]["/api/users/{user_id}"]["delete"]
        assert response.json()["error"] in documented_errors(delete_user, 409)


# --- the request schemas accept exactly what the validators accept

_SPEC: dict[str, Any] = {}


def _field_validator(model: str, field: str) -> Any:
    if not _SPEC:
        settings = Settings(database_url="sqlite+aiosqlite:///:memory:")
        _SPEC.update(create_app(settings).openapi())
    schema = _SPEC["components"]["schemas"][model]["properties"][field]
    return jsonschema_rs.validator_for(schema, validate_formats=True)


VALID_DATABASE = {
    "name": "x",
    "type": "postgresql",
    "host": "db.example.com",
    "port": "5432",
    "username": "u",
    "password": "p",
    "db_name": "d",
}


def _accepted(model: type[Any], base: dict[str, Any], field: str, value: Any) -> bool:
    try:
        model.model_validate({**base, field: value})
    except ValidationError:
        return False
    return True


TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("aZ09_.-:, /[]%\x00\x01\t\n \xa0\u3000\x85\ufeff"),
        # JSON text is UTF-8: no lone surrogates.
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=12,
)
AGREEMENT = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("field", ["name", "username", "db_name", "password"])
@AGREEMENT
@given(value=TEXT)
@example(value=" ")
@example(value="-x")
@example(value=" -x")
@example(value="x\n")
def test_database_text_fields_schema_matches_validator(field: str, value: str) -> None:
    schema = _field_validator("DatabaseCreate", field)
    assert schema.is_valid(value) == _accepted(DatabaseCreate, VALID_DATABASE, field, value)


@AGREEMENT
@given(
    value=st.one_of(
        TEXT,
        st.integers(-5, 70000).map(str),
        st.integers(-5, 70000),
        st.floats(-5, 70000),
        st.booleans(),
        st.none(),
    )
)
@example(value="00080")
@example(value="000080")
@example(value="65536")
@example(value=5432.0)
def test_port_schema_matches_validator(value: Any) -> None:
    schema = _field_validator("DatabaseCreate", "port")
    assert schema.is_valid(value) == _accepted(DatabaseCreate, VALID_DATABASE, "port", value)


@AGREEMENT
@given(value=st.one_of(TEXT, st.ip_addresses().map(str)))
@example(value="")
@example(value="a" * 254)
@example(value="db.example.com\n")
@example(value="::1")
@example(value="-h")
def test_host_schema_matches_validator(value: str) -> None:
    # Beyond the document, the validator also takes an IPv6 address in brackets or with a
    # zone index, which `format: ipv6` does not describe.
    if "[" in value or "%" in value:
        return
    schema = _field_validator("DatabaseCreate", "host")
    assert schema.is_valid(value) == _accepted(DatabaseCreate, VALID_DATABASE, "host", value)


@AGREEMENT
@given(value=TEXT)
def test_register_password_schema_matches_validator(value: str) -> None:
    base = {"email": "user@example.com", "password": "x" * 8}
    schema = _field_validator("UserRegister", "password")
    assert schema.is_valid(value) == _accepted(UserRegister, base, "password", value)


VALID_STORAGE = {"name": "x", "endpoint": "https://s3.example.com", "bucket": "backups"}
URL_TEXT = st.text(alphabet=st.sampled_from("htps:/.[]@?#%19aAZ-_~ \x00"), max_size=24)


@pytest.mark.parametrize(
    "field", ["name", "endpoint", "bucket", "prefix", "region", "access_key_id"]
)
@AGREEMENT
@given(value=st.one_of(TEXT, URL_TEXT, URL_TEXT.map(lambda v: "http://" + v)))
@example(value="https://s3.example.com:9000/path")
@example(value="http://h:0")
@example(value="a..b")
@example(value="192.168.0.1")
@example(value="xn--abc")
@example(value="abc-s3alias")
@example(value="a/../b")
@example(value=".x/..y/")
@example(value="/a")
def test_storage_fields_schema_matches_validator(field: str, value: str) -> None:
    # An endpoint with a bracketed IPv6 address is accepted beyond the document.
    if field == "endpoint" and "[" in value:
        return
    schema = _field_validator("StorageCreate", field)
    assert schema.is_valid(value) == _accepted(StorageCreate, VALID_STORAGE, field, value)
