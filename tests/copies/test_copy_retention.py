"""Retention and copies: a backup under S3 Object Lock is left until its date, one whose
deletion failed is left alone, and a deletion removes every copy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.copies.test_copies import add_storage
from tests.retention.test_retention import (
    _file,
    app_with_clock,
    completed_backups,
    set_created_at,
    sweeper,
)
from tests.support.apphelpers import Api, unique_name
from tests.support.clocks import TravelClock
from tests.support.sample_data import create_filled
from tests.support.servers.s3 import S3Server

pytestmark = pytest.mark.asyncio


async def test_retention_waits_for_the_lock_and_leaves_failed_deletions_alone(
    pg_server: Any, s3_server: S3Server, settings_factory: Any
) -> None:
    source = unique_name("lockret")
    create_filled(pg_server, source)
    locked_bucket, plain_bucket = s3_server.make_bucket(object_lock=True), s3_server.make_bucket()
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    clock = TravelClock(loops=3)
    async with app_with_clock(settings, clock) as (app, client):
        alice = await Api(client).signup()
        locked = await add_storage(alice, s3_server, locked_bucket, object_lock_days=1)
        plain = await add_storage(alice, s3_server, plain_bucket)
        database = await alice.add_database(pg_server, source, storage_ids=[locked["id"]])
        old, _ = await completed_backups(app, alice, database["id"], 2)
        await set_created_at(app, old["id"], clock.now() - timedelta(days=10))
        url = f"/api/databases/{database['id']}/retention"
        assert (await alice.put(url, json={"keep_last": 1})).status_code == 200

        # Under Object Lock until tomorrow: the whole backup waits, its local copy too.
        outcome = await sweeper(app).sweep(database["id"])
        assert outcome.deleted == []
        assert outcome.skipped == [old["id"]]
        assert _file(settings, old).exists()

        # Past the date the sweep deletes it; the server still holds the object (its own
        # clock has not moved), so that copy's deletion fails and says why.
        clock.travel(timedelta(days=2))
        outcome = await sweeper(app).sweep(database["id"])
        assert outcome.skipped == [old["id"]]
        assert not _file(settings, old).exists()
        after = (await alice.get(f"/api/backups/{old['id']}")).json()["backup"]
        assert [c["status"] for c in after["copies"]] == ["delete_failed"]
        # From then on retention leaves it alone: the owner sees why, a retry finishes.
        outcome = await sweeper(app).sweep(database["id"])
        assert outcome.skipped == [old["id"]]

        # A backup with a plain remote copy goes whole, the object and its manifest too:
        # the sweep after the next backup's completion deletes it (two days old by now).
        await alice.put(f"/api/databases/{database['id']}", json={"storage_ids": [plain["id"]]})
        third, fourth = await completed_backups(app, alice, database["id"], 2)
        assert (await alice.get(f"/api/backups/{third['id']}")).status_code == 404
        assert not _file(settings, third).exists()
        assert [k for k in s3_server.keys(plain_bucket) if third["filename"] in k] == []
        assert [k for k in s3_server.keys(plain_bucket) if fourth["filename"] in k] != []
    pg_server.drop_database(source)
