"""The ``audit_events`` table's migration, up and down, on both metadata engines: no
foreign key (an entry outlives its account), ids never reused, JSON details."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

from backup_api.migrate import alembic_config
from tests.project.test_migration_backup_source import run_sql

INSERT = (
    "INSERT INTO audit_events (time, user_id, client, action, outcome, details) VALUES"
    " ('2026-11-28 10:00:00', {user}, '192.0.2.1', 'login', 'success', '{{\"via\": \"login\"}}')"
)


def test_audit_migration_goes_up_and_down(metadata_url: str) -> None:
    config = alembic_config(metadata_url)
    before = ScriptDirectory.from_config(config).get_revision("0011_audit").down_revision
    command.upgrade(config, before)
    command.upgrade(config, "0011_audit")
    # An account that never existed (or no longer does) is no obstacle.
    run_sql(metadata_url, [INSERT.format(user=42), INSERT.format(user="NULL")])
    (rows,) = run_sql(metadata_url, ["SELECT id, user_id, action FROM audit_events ORDER BY id"])
    assert rows == [(1, 42, "login"), (2, None, "login")]
    run_sql(metadata_url, ["DELETE FROM audit_events WHERE id = 2", INSERT.format(user=7)])
    (ids,) = run_sql(metadata_url, ["SELECT id FROM audit_events ORDER BY id"])
    assert ids[0] == (1,)
    assert ids[1][0] > 2
    command.downgrade(config, before)
    command.upgrade(config, "0011_audit")
    (count,) = run_sql(metadata_url, ["SELECT count(*) FROM audit_events"])
    assert count == [(0,)]
