"""Deliveries for real: a backup's events reach a local HTTP receiver that checks every
webhook's signature (Standard Webhooks, implemented here from the specification), retries
on Svix's schedule driven by a clock the test moves, with the same ``webhook-id`` on each
attempt; persisted deliveries resumed after a restart; an apprise ``json://`` channel; the
test endpoint; and no password or secret in anything the receiver sees."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backup_api import events
from backup_api.config import Settings
from backup_api.models import NotificationDelivery
from tests.notifications.receiver import Receiver, receiving, tls_listening, verify_signature
from tests.support.apphelpers import Api, metadata_sql, running_app, unique_name
from tests.support.clocks import TravelClock

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
#: The scheduler, the retention sweep, the copy retrier, the overdue watch, the notifier.
LOOPS = 5


def stamp(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


async def add_webhook(api: Api, receiver: Receiver, event_types: list[str], **extra: Any) -> Any:
    body = {
        "name": "récepteur",
        "type": "webhook",
        "url": receiver.url("/hook?token=T0KEN"),
        "events": event_types,
        **extra,
    }
    response = await api.post("/api/notifications", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(api: Api, channel_id: int) -> list[dict[str, Any]]:
    response = await api.get(f"/api/notifications/{channel_id}/deliveries")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


async def deliveries_when(
    api: Api, channel_id: int, ready: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The channel's attempts once ``ready`` says so (attempts are recorded after the
    receiver answered: polled, under a generous deadline)."""
    deadline = time.monotonic() + 30
    while True:
        found = await deliveries(api, channel_id)
        if ready(found):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.02)


def publish(app: Any, event: events.ServiceEvent) -> None:
    app.state.backup_api.events.publish(event)


async def test_backup_events_signed_retried_and_free_of_secrets(
    settings_factory: Callable[..., Settings], pg_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = unique_name("notify")
    pg_server.create_database(source)
    clock = TravelClock(START, loops=LOOPS)
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with receiving() as receiver:
        # The first attempt meets a failing receiver.
        receiver.statuses = [500]
        async with running_app(settings, clock=clock) as (_, client):
            alice = await Api(client).signup()
            bob = await Api(client).signup()
            created = await add_webhook(alice, receiver, ["backup.completed", "backup.failed"])
            secret = created["secret"]
            channel = created["notification"]
            # Channels that must not hear it: another type, another user's.
            await add_webhook(alice, receiver, ["restore.completed"])
            await add_webhook(bob, receiver, ["backup.completed"])

            database = await alice.add_database(pg_server, source)
            backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
            assert backup["status"] == "completed", backup["error_msg"]

            first = (await receiver.wait_for(1))[0]
            assert (first.method, first.path) == ("POST", "/hook?token=T0KEN")
            assert first.headers["content-type"] == "application/json"
            assert verify_signature(secret, first.headers, first.body)
            assert first.headers["webhook-id"].startswith("msg_")
            assert first.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
            payload = json.loads(first.body)
            assert set(payload) == {"type", "timestamp", "data"}
            assert payload["type"] == "backup.completed"
            assert payload["data"]["backup"]["id"] == backup["id"]
            assert payload["data"]["backup"]["status"] == "completed"
            assert payload["data"]["database"] == {
                "id": database["id"],
                "name": database["name"],
                "type": "postgresql",
            }
            # Nothing secret: not the database's password, not the channel's secret.
            raw = first.body.decode() + json.dumps(first.headers)
            for secret_value in (pg_server.password, secret, secret.removeprefix("whsec_")):
                assert secret_value not in raw

            # The attempt is listed, the retry planned 5 s later.
            [attempt] = await deliveries_when(alice, channel["id"], lambda found: len(found) == 1)
            assert attempt["attempt"] == 1
            assert attempt["webhook_id"] == first.headers["webhook-id"]
            assert attempt["event_type"] == "backup.completed"
            assert (attempt["status_code"], attempt["error"]) == (500, "réponse HTTP 500")
            assert attempt["delivery_status"] == "pending"
            assert attempt["next_attempt_at"] == stamp(clock.now() + timedelta(seconds=5))

            # Not before its time; then again, the same message, signed anew.
            await clock.settled()
            clock.travel(timedelta(seconds=4))
            await clock.settled()
            assert len(receiver.requests) == 1
            clock.travel(timedelta(seconds=1))
            second = (await receiver.wait_for(2))[1]
            assert second.headers["webhook-id"] == first.headers["webhook-id"]
            assert second.body == first.body
            assert verify_signature(secret, second.headers, second.body)

            newest, oldest = await deliveries_when(
                alice, channel["id"], lambda found: found[0]["delivery_status"] == "delivered"
            )
            assert (newest["attempt"], newest["status_code"], newest["error"]) == (2, 200, None)
            assert newest["next_attempt_at"] is None
            assert oldest["id"] == attempt["id"]
            # Only the channel that listens to backup.completed and is alice's heard it.
            assert len(receiver.requests) == 2
    # The channel's URL (its token) is in no log line, at any level; the failure is.
    assert "T0KEN" not in caplog.text
    assert "réponse HTTP 500" in caplog.text
    pg_server.drop_database(source)


async def test_deliveries_survive_a_restart_and_give_up_after_the_schedule(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    event = events.ServiceEvent(events.SCHEDULE_SKIPPED, None, {"reason": "raison"})
    with receiving() as receiver:
        receiver.statuses = [503] * 20
        clock = TravelClock(START, loops=LOOPS)
        async with running_app(settings, clock=clock) as (app, client):
            admin = await Api(client).signup("root@example.com", role="admin")
            created = await add_webhook(admin, receiver, ["schedule.skipped"], scope="all")
            channel_id = created["notification"]["id"]
            publish(app, events.ServiceEvent(event.type, 12345, event.data, id=event.id))
            await receiver.wait_for(1)
            # Stopped once the attempt is recorded (one cut short would wait for its lease).
            [attempt] = await deliveries_when(admin, channel_id, lambda found: len(found) == 1)
            assert attempt["next_attempt_at"] == stamp(START + timedelta(seconds=5))

        # A new process (its clock past the 5 s) resumes the delivery where it stood.
        clock = TravelClock(START + timedelta(seconds=6), loops=LOOPS)
        async with running_app(settings, clock=clock) as (app, client):
            admin = await Api(client).login("root@example.com")
            await receiver.wait_for(2)
            waits = [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2)]
            waits += [timedelta(hours=5), timedelta(hours=10), timedelta(hours=10)]
            for count, wait in enumerate(waits, start=3):
                # The previous attempt recorded (its retry planned from its own time).
                await deliveries_when(admin, channel_id, lambda found, n=count - 1: len(found) == n)
                clock.travel(wait)
                await receiver.wait_for(count)
            requests = receiver.requests
            assert len({r.headers["webhook-id"] for r in requests}) == 1
            assert requests[0].headers["webhook-id"] == event.id
            assert verify_signature(created["secret"], requests[-1].headers, requests[-1].body)

            attempts = await deliveries_when(
                admin, channel_id, lambda found: bool(found) and found[0]["attempt"] == 8
            )
            assert attempts[0]["delivery_status"] == "failed"
            assert [a["attempt"] for a in attempts] == [8, 7, 6, 5, 4, 3, 2, 1]
            assert {a["status_code"] for a in attempts} == {503}
            assert attempts[0]["next_attempt_at"] is None
            # Failed for good: no ninth attempt, however long one waits.
            clock.travel(timedelta(days=2))
            await clock.settled()
            assert len(receiver.requests) == 8


async def test_who_hears_what(settings_factory: Callable[..., Settings]) -> None:
    """A user's channel hears that user's events of the types it chose; an admin's
    ``scope: all`` channel hears everyone's, and the service-wide ones; a disabled channel
    hears nothing."""
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with receiving() as receiver:
        async with running_app(settings) as (app, client):
            admin = await Api(client).signup("root@example.com", role="admin")
            alice = await Api(client).signup()
            bob = await Api(client).signup()
            channels = [
                (admin, "/all", ["backup.failed", "schedule.skipped"], {"scope": "all"}),
                (admin, "/admin", ["backup.failed"], {}),
                (alice, "/alice", ["backup.failed"], {}),
                (alice, "/alice-restores", ["restore.failed"], {}),
                (alice, "/alice-off", ["backup.failed"], {"enabled": False}),
            ]
            for api, path, types, extra in channels:
                body = {"name": path, "type": "webhook", "url": receiver.url(path)}
                body.update(events=types, **extra)
                assert (await api.post("/api/notifications", json=body)).status_code == 201
            for user, event_type in [
                (alice.user["id"], events.BACKUP_FAILED),
                (bob.user["id"], events.BACKUP_FAILED),
                (None, events.SCHEDULE_SKIPPED),
            ]:
                publish(app, events.ServiceEvent(event_type, user, {"n": user}))
            # Each event's deliveries are recorded in one write, before any is sent: once
            # every event was heard somewhere, no other delivery can appear.
            await receiver.wait_for(4)
            table = NotificationDelivery.__table__  # type: ignore[attr-defined]
            recorded = await metadata_sql(app, select(table.c.body))
            heard = sorted(
                (r.path, str(json.loads(r.body)["data"]["n"]), json.loads(r.body)["type"])
                for r in await receiver.wait_for(len(recorded))
            )
            alice_id, bob_id = str(alice.user["id"]), str(bob.user["id"])
            assert heard == sorted(
                [
                    ("/alice", alice_id, "backup.failed"),
                    ("/all", alice_id, "backup.failed"),
                    ("/all", bob_id, "backup.failed"),
                    ("/all", "None", "schedule.skipped"),
                ]
            )


async def test_a_send_cut_short_by_a_stop_is_sent_again_at_the_next_start(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with receiving() as receiver:
        # The receiver takes the request and does not answer: the service stops meanwhile.
        receiver.answering.clear()
        async with running_app(settings, clock=TravelClock(START, loops=LOOPS)) as (app, client):
            admin = await Api(client).signup("root@example.com", role="admin")
            created = await add_webhook(admin, receiver, ["schedule.skipped"], scope="all")
            channel_id = created["notification"]["id"]
            publish(app, events.ServiceEvent(events.SCHEDULE_SKIPPED, None, {"reason": "x"}))
            await receiver.wait_for(1)
        receiver.answering.set()

        # No attempt was recorded; the next start sends it at once (not after its lease).
        async with running_app(settings, clock=TravelClock(START, loops=LOOPS)) as (_, client):
            admin = await Api(client).login("root@example.com")
            second = (await receiver.wait_for(2))[1]
            assert second.headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]
            [attempt] = await deliveries_when(admin, channel_id, lambda found: bool(found))
            assert (attempt["attempt"], attempt["delivery_status"]) == (1, "delivered")


async def test_tls_goes_to_the_checked_address_with_the_name_as_server_name(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """The address is pinned, yet the TLS handshake names the URL's host (SNI), and the
    certificate is checked against it: a self-signed one is refused."""
    settings = settings_factory(allowed_outbound_hosts=["localhost", "127.0.0.1"])
    with tls_listening(tmp_path) as listener:
        async with running_app(settings) as (_, client):
            alice = await Api(client).signup()
            body = {
                "name": "tls",
                "type": "webhook",
                "url": f"https://localhost:{listener.port}/hook",
                "events": ["backup.failed"],
            }
            response = await alice.post("/api/notifications", json=body)
            assert response.status_code == 201, response.text
            channel_id = response.json()["notification"]["id"]
            response = await alice.post(f"/api/notifications/{channel_id}/test")
            assert response.json() == {
                "ok": False,
                "error": "échec TLS (certificat refusé, ou serveur sans TLS)",
            }
            assert listener.server_names == ["localhost"]


async def test_apprise_json_channel_reaches_a_local_receiver(
    settings_factory: Callable[..., Settings],
) -> None:
    with receiving() as receiver:
        # A non-admin's apprise channel, its host listed by the operator.
        settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
        clock = TravelClock(START, loops=LOOPS)
        async with running_app(settings, clock=clock) as (app, client):
            alice = await Api(client).signup()
            body = {
                "name": "apprise",
                "type": "apprise",
                "url": f"json://127.0.0.1:{receiver.port}/apprise",
                "events": ["backup.failed"],
            }
            response = await alice.post("/api/notifications", json=body)
            assert response.status_code == 201, response.text
            channel = response.json()["notification"]
            data = {
                "backup": {"id": 7, "error_msg": "connexion refusée"},
                "database": {"id": 3, "name": "compta", "type": "postgresql"},
            }
            publish(app, events.ServiceEvent(events.BACKUP_FAILED, alice.user["id"], data))
            [received] = await receiver.wait_for(1)
            assert (received.method, received.path) == ("POST", "/apprise")
            message = json.loads(received.body)
            assert message["title"] == "backup-api: backup.failed"
            assert "compta" in message["message"]
            assert "connexion refusée" in message["message"]

            [attempt] = await deliveries_when(alice, channel["id"], lambda found: bool(found))
            assert attempt["delivery_status"] == "delivered"
            assert (attempt["attempt"], attempt["error"]) == (1, None)

            response = await alice.post(f"/api/notifications/{channel['id']}/test")
            assert response.json() == {"ok": True}
            assert json.loads(receiver.requests[-1].body)["title"] == "backup-api: test"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_test_endpoint(settings_factory: Callable[..., Settings]) -> None:
    listed = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with receiving() as receiver:
        async with running_app(listed) as (_, client):
            alice = await Api(client).signup("alice@example.com")
            created = await add_webhook(alice, receiver, ["backup.failed"])
            channel_id = created["notification"]["id"]
            url = f"/api/notifications/{channel_id}/test"

            response = await alice.post(url)
            assert response.status_code == 200, response.text
            assert response.json() == {"ok": True, "status_code": 200}
            [sent] = await receiver.wait_for(1)
            assert verify_signature(created["secret"], sent.headers, sent.body)
            payload = json.loads(sent.body)
            assert payload["type"] == "test"
            assert payload["data"]["channel"]["id"] == channel_id

            receiver.statuses = [500, 302]
            response = await alice.post(url)
            assert response.json() == {
                "ok": False,
                "status_code": 500,
                "error": "réponse HTTP 500",
            }
            # A redirect is an answer, never followed.
            response = await alice.post(url)
            assert response.json() == {
                "ok": False,
                "status_code": 302,
                "error": "redirection non suivie (HTTP 302)",
            }
            assert len(receiver.requests) == 3

            dead = f"http://127.0.0.1:{closed_port()}/hook"
            response = await alice.put(f"/api/notifications/{channel_id}", json={"url": dead})
            assert response.status_code == 200, response.text
            response = await alice.post(url)
            assert response.json() == {
                "ok": False,
                "error": "connexion impossible au destinataire",
            }
            # TLS to a server without it.
            plain = f"https://127.0.0.1:{receiver.port}/hook"
            response = await alice.put(f"/api/notifications/{channel_id}", json={"url": plain})
            assert response.status_code == 200, response.text
            response = await alice.post(url)
            assert response.json() == {
                "ok": False,
                "error": "échec TLS (certificat refusé, ou serveur sans TLS)",
            }
            # A test is not a delivery: nothing recorded.
            assert await deliveries(alice, channel_id) == []

        # The rule is applied at each send: once the host is no longer listed, the
        # channel made while it was cannot reach it.
        async with running_app(listed.model_copy(update={"allowed_outbound_hosts": []})) as (
            _,
            client,
        ):
            alice = await Api(client).login("alice@example.com")
            await alice.put(f"/api/notifications/{channel_id}", json={"name": "toujours là"})
            response = await alice.post(url)
            assert response.json() == {
                "ok": False,
                "error": "adresse non publique (privée, locale ou réservée) non autorisée: "
                "127.0.0.1",
            }
            assert len(receiver.requests) == 3
