"""The migration that adds notifications: existing schedules get no heartbeat, the new
tables take channels, deliveries and attempts, and it goes back down cleanly, on SQLite
and on PostgreSQL alike."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

from backup_api.migrate import alembic_config
from tests.project.test_migration_backup_source import EXISTING, run_sql

REVISION = "0010_notifications"
SCHEDULE = (
    "INSERT INTO schedules (id, database_id, cron, timezone, enabled, skipped_runs,"
    " retry_attempt, created_at, updated_at) VALUES (1, 1, '0 3 * * *', 'UTC', true, 0, 0,"
    " '2026-01-01', '2026-01-01')"
)
CHANNEL = [
    "INSERT INTO notification_channels (id, user_id, name, type, url_encrypted, url_masked,"
    " secret_encrypted, events, scope, enabled, created_at, updated_at) VALUES (1, 1, 'hook',"
    " 'webhook', 'token', 'https://example.com/***', 'secret', '[\"backup.failed\"]', 'own',"
    " true, '2026-01-01', '2026-01-01')",
    "INSERT INTO notification_deliveries (id, channel_id, event_id, event_type, body, status,"
    " attempts, next_attempt_at, created_at, updated_at) VALUES (1, 1, 'msg_1',"
    " 'backup.failed', '{}', 'pending', 1, '2026-01-01', '2026-01-01', '2026-01-01')",
    "INSERT INTO notification_attempts (id, delivery_id, channel_id, attempt, status_code,"
    " error, at) VALUES (1, 1, 1, 1, 500, 'réponse HTTP 500', '2026-01-01')",
]


def test_notifications_migration_adds_tables_and_heartbeat_and_goes_back(
    metadata_url: str,
) -> None:
    config = alembic_config(metadata_url)
    before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
    assert before == "0009_encryption"
    command.upgrade(config, before)
    run_sql(metadata_url, [*EXISTING, SCHEDULE])

    command.upgrade(config, REVISION)
    (schedules,) = run_sql(
        metadata_url,
        ["SELECT id, cron, heartbeat_url_encrypted, heartbeat_url_masked FROM schedules"],
    )
    assert schedules == [(1, "0 3 * * *", None, None)]
    run_sql(metadata_url, CHANNEL)
    (attempts,) = run_sql(
        metadata_url,
        [
            "SELECT a.attempt, a.status_code, d.event_id, c.name FROM notification_attempts a"
            " JOIN notification_deliveries d ON d.id = a.delivery_id"
            " JOIN notification_channels c ON c.id = d.channel_id"
        ],
    )
    assert attempts == [(1, 500, "msg_1", "hook")]

    command.downgrade(config, before)
    (schedules,) = run_sql(metadata_url, ["SELECT id, cron FROM schedules"])
    assert schedules == [(1, "0 3 * * *")]
    command.upgrade(config, "head")
    (channels,) = run_sql(metadata_url, ["SELECT count(*) FROM notification_channels"])
    assert channels == [(0,)]
