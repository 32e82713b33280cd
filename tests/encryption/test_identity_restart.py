"""An identity lives in the memory of the process that received it: a restore still
waiting for its turn when the service restarts fails, saying to start it again, and
leaves its target as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backup_api.archiving.agecrypt import generate_identity
from backup_api.config import Settings
from tests.encryption.conftest import FAST_LOG_N
from tests.support.apphelpers import Api, running_app, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled, snapshot


async def test_a_waiting_restore_loses_its_identity_with_a_restart(
    pg_server: Any, settings_factory: Callable[..., Settings]
) -> None:
    identity, recipient = generate_identity()
    source, busy, target = unique_name("src"), unique_name("busy"), unique_name("dst")
    expected = create_filled(pg_server, source)
    create_filled(pg_server, busy)
    pg_server.create_database(target)
    pg_server.execute("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('avant')", target)
    # One job at a time: a held backup keeps the restore waiting, never started.
    settings = settings_factory(max_concurrent_jobs=1, age_scrypt_log_n=FAST_LOG_N)
    async with running_app(settings) as (app, client):
        alice = await Api(client).signup("alice@example.com")
        encrypted = await alice.add_database(
            pg_server, source, encryption={"recipients": [recipient]}
        )
        held = await alice.add_database(pg_server, busy)
        other = await alice.add_database(pg_server, target)
        backup = await alice.wait_backup((await alice.start_backup(encrypted["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        with table_locked(pg_server, busy):
            running = await alice.start_backup(held["id"])
            await wait_until(lambda: tool_processes("pg_dump", f"backup:{running['id']}@"))
            response = await alice.post(
                f"/api/backups/{backup['id']}/restore",
                json={"database_id": other["id"], "identity": identity},
            )
            assert response.status_code == 202, response.text
            restore_id = response.json()["restore"]["id"]
            assert list(app.state.backup_api.restore_identities) == [restore_id]
            # The service stops here, the restore still waiting.
    async with running_app(settings) as (app, client):
        alice = await Api(client).login("alice@example.com")
        restore = await alice.wait_restore(restore_id)
        assert restore["status"] == "failed"
        assert restore["error_msg"] == "identité perdue au redémarrage: relancez la restauration"
        assert pg_server.query("SELECT v FROM marker", target) == [("avant",)]
        # Started again with the identity, it runs.
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": other["id"], "identity": identity},
        )
        assert (await alice.wait_restore(response.json()["restore"]["id"]))["status"] == (
            "completed"
        )
    assert snapshot(pg_server, target) == expected
    for name in (source, busy, target):
        pg_server.drop_database(name)
