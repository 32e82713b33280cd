"""The schedules migration: backups taken before it were asked for by hand, restores stay
linked to their backups, and it goes back down cleanly, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

from backup_api.migrate import alembic_config
from tests.project.test_migration_backup_source import EXISTING, run_sql

REVISION = "0006_schedules"


def test_schedules_migration_marks_old_backups_manual_and_goes_back(metadata_url: str) -> None:
    config = alembic_config(metadata_url)
    before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    run_sql(metadata_url, EXISTING)

    command.upgrade(config, REVISION)
    backups, restores = run_sql(
        metadata_url,
        [
            'SELECT id, "trigger" FROM backups ORDER BY id',
            "SELECT id, backup_id FROM restores",
        ],
    )
    assert backups == [(1, "manual"), (2, "manual")]
    assert restores == [(1, 1)]
    run_sql(
        metadata_url,
        [
            "INSERT INTO schedules (database_id, cron, timezone, enabled, last_backup_id,"
            " skipped_runs, retry_attempt, created_at, updated_at) VALUES"
            " (1, '0 3 * * *', 'Europe/Paris', true, 1, 0, 0, '2026-01-01', '2026-01-01')",
        ],
    )
    (rows,) = run_sql(metadata_url, ["SELECT database_id, last_backup_id FROM schedules"])
    assert rows == [(1, 1)]

    command.downgrade(config, before)
    backups, restores = run_sql(
        metadata_url, ["SELECT * FROM backups ORDER BY id", "SELECT backup_id FROM restores"]
    )
    assert [len(row) for row in backups] == [20, 20]
    assert restores == [(1,)]
    command.upgrade(config, "head")
