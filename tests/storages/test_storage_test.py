"""``POST /api/storages/{id}/test`` against a real S3-compatible server (moto, auth
enforced): what it answers, that it leaves nothing behind, that it applies the outbound
rule of the storage's owner, that it is limited per account with the databases' tests,
and that the secret is in no answer and no log line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from backup_api.services.connectiontests import THROTTLED
from tests.support.apphelpers import Api, make_settings, running_app
from tests.support.serverproc import free_port

MISSING_ID = 2**31 - 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(s3: Any, bucket: str, **overrides: Any) -> dict[str, Any]:
    values = {
        "name": "moto",
        "endpoint": s3.endpoint,
        "region": s3.region,
        "bucket": bucket,
        "prefix": "tests/probe",
        "access_key_id": s3.access_key_id,
        "secret_access_key": s3.secret_access_key,
    }
    values.update(overrides)
    return values


async def add(api: Api, values: dict[str, Any]) -> str:
    response = await api.post("/api/storages", json=values)
    assert response.status_code == 201, response.text
    return f"/api/storages/{response.json()['storage']['id']}/test"


async def test_answers_and_leaves_nothing(
    s3_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bucket = s3_server.make_bucket()
    settings = make_settings(tmp_path, allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (_, client):
        alice = await Api(client).signup("alice@example.com")
        good = await add(alice, body(s3_server, bucket))
        response = await alice.post(good)
        assert (response.status_code, response.json()) == (200, {"ok": True})
        # The probe object was written, read back and deleted.
        assert s3_server.keys(bucket) == []

        wrong = "not-the-Secret/0123456789abcdefghijklmnopqrstu"
        cases = [
            (
                body(s3_server, bucket, secret_access_key=wrong),
                "identifiants refusés par le stockage",
            ),
            (body(s3_server, bucket, access_key_id="", secret_access_key=""), None),
            (
                body(s3_server, "no-such-bucket-here"),
                "compartiment introuvable: no-such-bucket-here",
            ),
            (
                body(s3_server, bucket, endpoint=f"http://127.0.0.1:{free_port()}"),
                "stockage injoignable",
            ),
        ]
        for values, error in cases:
            response = await alice.post(await add(alice, values))
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["ok"] is False, answer
            if error is not None:
                assert answer == {"ok": False, "error": error}
            assert s3_server.secret_access_key not in response.text
            assert wrong not in response.text
        assert s3_server.keys(bucket) == []
    assert s3_server.secret_access_key not in caplog.text
    assert wrong not in caplog.text


async def test_the_owners_outbound_rule_applies(s3_server: Any, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket()
    async with running_app(make_settings(tmp_path)) as (_, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        alice = await Api(client).signup("alice@example.com")
        # A non-admin's storage may not point at the service's own network...
        url = await add(alice, body(s3_server, bucket))
        response = await alice.post(url)
        assert response.json() == {
            "ok": False,
            "error": "adresse non publique (privée, locale ou réservée) non autorisée: 127.0.0.1",
        }
        # ...even when an admin runs the test; an admin's own storage may.
        assert (await admin.post(url)).json()["ok"] is False
        assert (await admin.post(await add(admin, body(s3_server, bucket)))).json() == {"ok": True}
        # A name that does not resolve is said so.
        url = await add(alice, body(s3_server, bucket, endpoint="http://no-such-host.invalid"))
        assert (await alice.post(url)).json() == {
            "ok": False,
            "error": "hôte introuvable: no-such-host.invalid",
        }


async def test_ownership_and_authentication(s3_server: Any, tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):
        alice = await Api(client).signup("alice@example.com")
        bob = await Api(client).signup("bob@example.com")
        url = await add(alice, body(s3_server, "some-bucket"))
        response = await bob.post(url)
        assert (response.status_code, response.json()) == (403, {"error": "Accès non autorisé"})
        response = await alice.post(f"/api/storages/{MISSING_ID}/test")
        assert (response.status_code, response.json()) == (404, {"error": "Stockage introuvable"})
        assert (await client.post(url)).status_code == 401


async def test_limited_per_account_with_the_databases_tests(
    s3_server: Any, pg_server: Any, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    settings = make_settings(
        tmp_path,
        allowed_outbound_hosts=["127.0.0.1"],
        connection_tests_per_user=2,
        connection_tests_window_seconds=60,
    )
    async with running_app(settings) as (app, client):
        clock = Clock()
        app.state.backup_api.connection_tests.clock = clock
        alice = await Api(client).signup("alice@example.com")
        bob = await Api(client).signup("bob@example.com")
        url = await add(alice, body(s3_server, bucket))
        theirs = await add(bob, body(s3_server, bucket))
        database = await alice.add_database(pg_server, "postgres")
        assert (await alice.post(url)).json() == {"ok": True}
        assert (await alice.post(f"/api/databases/{database['id']}/test")).json()["ok"] is True
        clock.now += 20
        refused = await alice.post(url)
        assert refused.status_code == 429
        assert refused.json() == {"error": THROTTLED}
        assert refused.headers["retry-after"] == "40"
        # Someone else's storage is refused before anything is counted or connected.
        assert (await alice.post(theirs)).status_code == 403
        assert (await bob.post(theirs)).json() == {"ok": True}
        clock.now += 40
        assert (await alice.post(url)).json() == {"ok": True}
