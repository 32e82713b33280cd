"""The migration that adds encryption: existing databases and backups are plain (not
encrypted, no keys), and it goes back down cleanly, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

from backup_api.migrate import alembic_config
from tests.project.test_migration_backup_source import EXISTING, run_sql

REVISION = "0009_encryption"


def test_encryption_migration_keeps_existing_records_plain(metadata_url: str) -> None:
    config = alembic_config(metadata_url)
    before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    run_sql(metadata_url, EXISTING)
    command.upgrade(config, REVISION)
    databases, backups = run_sql(
        metadata_url,
        [
            "SELECT id, encryption_mode, encryption_recipients, encryption_passphrase_encrypted"
            " FROM databases ORDER BY id",
            "SELECT id, encrypted, encryption_recipients, encryption_passphrase_encrypted"
            " FROM backups ORDER BY id",
        ],
    )
    assert databases == [(1, None, None, None)]
    assert [(row[0], bool(row[1]), row[2], row[3]) for row in backups] == [
        (1, False, None, None),
        (2, False, None, None),
    ]
    command.downgrade(config, before)
    (names,) = run_sql(metadata_url, ["SELECT filename FROM backups ORDER BY id"])
    assert names == [("a.zip",), ("b.zip",)]
    command.upgrade(config, "head")
