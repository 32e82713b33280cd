"""Abuse and bad input: 400 (or 429), never 500, and nothing stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled

VALID = {
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


def _body(**changes: Any) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


BAD_BODIES = {
    "huge": b'{"name": "' + b"x" * (1 << 20) + b'"}',
    "truncated": b'{"name": "x", "type": ',
    "not json": b"name=x&type=postgresql",
    "array": b"[1, 2, 3]",
    "null": b"null",
    "number": b"42",
    "wrong types": _body(port=[5432], host={"a": 1}),
    "unknown field": _body(owner="bob"),
    "nul byte": _body(name="a\x00b"),
    "10 KB name": _body(name="n" * 10_000),
    "10 KB db_name": _body(db_name="d" * 10_000),
    "deep nesting": b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "invalid utf-8": b'{"name": "\xff\xfe"}',
    "float port": _body(port=5432.5),
    "negative port": _body(port=-1),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_bodies_are_400_and_store_nothing(alice: Api, case: str) -> None:
    response = await alice.post(
        "/api/databases",
        content=BAD_BODIES[case],
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, (case, response.status_code, response.text[:200])
    assert list(response.json()) == ["error"]
    assert (await alice.get("/api/databases")).json()["databases"] == []


async def test_oversized_body_is_refused_before_parsing(alice: Api) -> None:
    response = await alice.post(
        "/auth/register",
        content=b"{" + b" " * (2 << 20) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "trop volumineux" in response.json()["error"]


async def test_page_size_is_bounded(alice: Api) -> None:
    for url in ("/api/backups?limit=1001", "/api/databases?limit=5000", "/api/restores?limit=0"):
        response = await alice.get(url)
        assert response.status_code == 400, url
    assert (await alice.get("/api/backups?limit=1000")).status_code == 200


async def test_per_user_active_backups_are_capped(pg_server: Any, tmp_path: Any) -> None:
    source = unique_name("cap")
    create_filled(pg_server, source)
    settings = make_settings(tmp_path, max_active_backups_per_user=2)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        other = await Api(client).signup()
        database = await api.add_database(pg_server, source)
        with table_locked(pg_server, source):
            first = await api.start_backup(database["id"])
            await wait_until(lambda: tool_processes("pg_dump", f"backup:{first['id']}@"))
            await api.start_backup(database["id"])
            response = await api.post(f"/api/backups/database/{database['id']}")
            assert response.status_code == 429
            assert "retry-after" in response.headers
            # Another user is not affected by this user's queue.
            theirs = await other.add_database(pg_server, source)
            assert (await other.post(f"/api/backups/database/{theirs['id']}")).status_code == 202
        assert len((await api.get("/api/backups")).json()["backups"]) == 2
    pg_server.drop_database(source)


async def test_concurrent_starts_get_distinct_files_and_respect_the_cap(
    pg_server: Any, tmp_path: Any
) -> None:
    """Twenty simultaneous starts on one database, in the same second: never two records on
    one file name, never more pending than the cap, and every accepted one really runs."""
    source = unique_name("burst")
    create_filled(pg_server, source)
    settings = make_settings(tmp_path, max_active_backups_per_user=8)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(pg_server, source)
        with table_locked(pg_server, source):
            responses = await asyncio.gather(
                *(api.post(f"/api/backups/database/{database['id']}") for _ in range(20))
            )
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [202] * 8 + [429] * 12, statuses
        accepted = [r.json()["backup"] for r in responses if r.status_code == 202]
        assert len({b["filename"] for b in accepted}) == 8
        assert len({b["filepath"] for b in accepted}) == 8
        finished = [await api.wait_backup(b["id"], timeout=120) for b in accepted]
        assert [b["status"] for b in finished] == ["completed"] * 8
        listed = (await api.get(f"/api/backups/database/{database['id']}")).json()["backups"]
        assert sorted(b["id"] for b in listed) == sorted(b["id"] for b in accepted)
    pg_server.drop_database(source)
