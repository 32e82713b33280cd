"""GET /metrics: the token's guard, and counters that match the records after real
backups and restores (real pg_dump / mysqldump / psql against the suite's servers)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from backup_api.config import Settings
from tests.support.apphelpers import Api, running_app, unique_name
from tests.support.servers.common import free_port

TOKEN = "jeton-prometheus-0123456789abcdef"
BAD_TOKEN = {"error": "jeton des métriques absent ou invalide"}


def parse(text: str) -> dict[str, list[Sample]]:
    """Every sample by its name (``..._total``, ``..._bucket``), through the parser
    Prometheus' own client library ships."""
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def by_labels(samples: list[Sample], *names: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[name] for name in names): s.value for s in samples}


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def scrape(api: Api) -> dict[str, list[Sample]]:
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_metrics_are_off_by_default(settings_factory: Callable[..., Settings]) -> None:
    async with running_app(settings_factory()) as (_, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        unknown = await client.get("/no-such-route")
        for method in ("GET", "POST"):
            response = await admin.request(method, "/metrics")
            assert response.status_code == 404
            assert response.json() == unknown.json() == {"error": "Ressource introuvable"}
        assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


async def test_metrics_want_the_token(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_app(settings_factory(metrics_token=TOKEN, log_level="debug")) as (_, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        refused = [
            await client.get("/metrics"),
            await client.get("/metrics", headers={"Authorization": "Bearer mauvais-jeton"}),
            await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
            await client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
            # An admin's own token is an account's, not the scraper's.
            await admin.get("/metrics"),
        ]
        for response in refused:
            assert response.status_code == 401
            assert response.json() == BAD_TOKEN
            assert response.headers["www-authenticate"] == "Bearer"
        samples = await scrape(admin)
        assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]
    assert samples["backup_api_jobs_running"][0].value == 0
    assert samples["backup_api_jobs_queued"][0].value == 0
    free = by_labels(samples["backup_api_destination_free_bytes"], "destination")
    assert free[("local",)] > 0
    assert TOKEN not in caplog.text


async def test_counters_match_the_records(
    settings_factory: Callable[..., Settings], pg_server: Any, mysql_server: Any
) -> None:
    pg_source, pg_target, my_source = (unique_name("metrics") for _ in range(3))
    pg_server.create_database(pg_source)
    pg_server.create_database(pg_target)
    mysql_server.create_database(my_source)
    pg_server.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3);", pg_source)
    async with running_app(settings_factory(metrics_token=TOKEN)) as (_, client):
        alice = await Api(client).signup()
        bob = await Api(client).signup()
        pg = await alice.add_database(pg_server, pg_source)
        target = await alice.add_database(pg_server, pg_target)
        my = await bob.add_database(mysql_server, my_source)
        # Failures: a password the server refuses, a server nobody listens for.
        wrong = await alice.add_database(pg_server, pg_source, name="refusée", password="faux")
        closed_port = str(free_port())
        gone = await bob.add_database(mysql_server, my_source, name="éteinte", port=closed_port)

        # Before any backup: every database is listed, with no success yet.
        before = await scrape(alice)
        never = by_labels(
            before["backup_api_last_success_timestamp_seconds"], "database_id", "user_id"
        )
        assert never[(str(pg["id"]), str(alice.user["id"]))] == 0
        assert "backup_api_last_backup_status" not in before

        ended = []
        for api, database in [(alice, pg), (alice, pg), (bob, my), (alice, wrong), (bob, gone)]:
            ended.append(await api.wait_backup((await api.start_backup(database["id"]))["id"]))
        assert [b["status"] for b in ended] == ["completed"] * 3 + ["failed"] * 2
        response = await alice.post(
            f"/api/backups/{ended[1]['id']}/restore", json={"database_id": target["id"]}
        )
        assert response.status_code == 202, response.text
        restore = await alice.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed"

        samples = await scrape(alice)
        records = [
            *(await alice.get("/api/backups")).json()["backups"],
            *(await bob.get("/api/backups")).json()["backups"],
        ]

    assert {b["id"] for b in records} == {b["id"] for b in ended}
    expected = Counter((b["db_type"], b["trigger"], b["status"]) for b in records)
    counted = by_labels(samples["backup_api_backups_total"], "db_type", "trigger", "outcome")
    assert counted == {key: float(n) for key, n in expected.items()}
    assert by_labels(samples["backup_api_restores_total"], "db_type", "outcome") == {
        ("postgresql", "completed"): 1.0
    }
    dumped = by_labels(samples["backup_api_dumped_bytes_total"], "db_type")
    for db_type in ("postgresql", "mysql"):
        completed = [b for b in records if b["db_type"] == db_type and b["status"] == "completed"]
        assert dumped[(db_type,)] == sum(b["dump_size"] for b in completed) > 0
        sizes = samples["backup_api_backup_size_bytes_count"]
        assert by_labels(sizes, "db_type")[(db_type,)] == len(completed)
        size_sum = by_labels(samples["backup_api_backup_size_bytes_sum"], "db_type")
        assert size_sum[(db_type,)] == sum(b["size"] for b in completed)
        durations = by_labels(samples["backup_api_backup_duration_seconds_sum"], "db_type")
        assert durations[(db_type,)] == pytest.approx(
            sum(b["duration_seconds"] for b in completed), abs=0.01 * len(completed)
        )
        # Small dumps: every one is under the first bucket's megabyte.
        buckets = {
            s.labels["le"]: s.value
            for s in samples["backup_api_backup_size_bytes_bucket"]
            if s.labels["db_type"] == db_type
        }
        assert buckets["1048576.0"] == buckets["+Inf"] == len(completed)

    labels = ("database_id", "database_name", "user_id")
    success = by_labels(samples["backup_api_last_success_timestamp_seconds"], *labels)
    status = by_labels(samples["backup_api_last_backup_status"], *labels)
    alice_id, bob_id = str(alice.user["id"]), str(bob.user["id"])
    newest_pg = ended[1]
    assert int(success[(str(pg["id"]), pg["name"], alice_id)]) == epoch(newest_pg["finished_at"])
    assert int(success[(str(my["id"]), my["name"], bob_id)]) == epoch(ended[2]["finished_at"])
    assert success[(str(wrong["id"]), "refusée", alice_id)] == 0
    assert success[(str(target["id"]), target["name"], alice_id)] == 0
    assert status == {
        (str(pg["id"]), pg["name"], alice_id): 1.0,
        (str(my["id"]), my["name"], bob_id): 1.0,
        (str(wrong["id"]), "refusée", alice_id): 0.0,
        (str(gone["id"]), "éteinte", bob_id): 0.0,
    }
    # No schedule: nothing can be overdue, and the gauge lists no database.
    assert "backup_api_backup_overdue" not in samples
