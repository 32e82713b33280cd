"""The migration that gives backups their source's name, host and port: existing records
are filled in from their database when it still exists, and it goes back down cleanly, on
SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backup_api.migrate import alembic_config

REVISION = "0003_backup_source"

EXISTING = [
    "INSERT INTO users (id, email, password_hash, role, token_key, created_at, updated_at)"
    " VALUES (1, 'a@example.com', 'x', 'user', 'k', '2026-01-01', '2026-01-01')",
    "INSERT INTO databases (id, name, type, host, port, username, password_encrypted,"
    " db_name, user_id, created_at, updated_at) VALUES (1, 'Ma Base', 'postgresql',"
    " 'db.example.com', '5432', 'u', 'x', 'ma_base', 1, '2026-01-01', '2026-01-01')",
    "INSERT INTO backups (id, filename, filepath, size, status, db_type, db_name, user_id,"
    " database_id, created_at, updated_at) VALUES (1, 'a.zip', 'db/backups/postgresql/a.zip',"
    " 10, 'completed', 'postgresql', 'ma_base', 1, 1, '2026-01-01', '2026-01-01')",
    # Its database was deleted before the migration: nothing is known of it but db_name.
    "INSERT INTO backups (id, filename, filepath, size, status, db_type, db_name, user_id,"
    " database_id, created_at, updated_at) VALUES (2, 'b.zip', 'db/backups/mysql/b.zip',"
    " 10, 'completed', 'mysql', 'gone', 1, NULL, '2026-01-01', '2026-01-01')",
    "INSERT INTO restores (id, backup_id, database_id, status, user_id, created_at,"
    " updated_at) VALUES (1, 1, 1, 'completed', 1, '2026-01-01', '2026-01-01')",
]


def run_sql(url: str, statements: list[str]) -> list[list[tuple[Any, ...]]]:
    async def run() -> list[list[tuple[Any, ...]]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                results = []
                for sql in statements:
                    result = await connection.execute(text(sql))
                    results.append([tuple(row) for row in result] if result.returns_rows else [])
                return results
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_backup_source_migration_fills_known_sources_and_goes_back(metadata_url: str) -> None:
    config = alembic_config(metadata_url)
    before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    run_sql(metadata_url, EXISTING)

    command.upgrade(config, REVISION)
    backups, restores = run_sql(
        metadata_url,
        [
            "SELECT id, database_name, db_host, db_port, db_name FROM backups ORDER BY id",
            "SELECT id, backup_id, safety_backup_id FROM restores",
        ],
    )
    assert backups == [
        (1, "Ma Base", "db.example.com", "5432", "ma_base"),
        (2, None, None, None, "gone"),
    ]
    # Adding the restores' column kept them linked to their backups.
    assert restores == [(1, 1, None)]

    command.downgrade(config, before)
    backups, restores = run_sql(
        metadata_url,
        ["SELECT * FROM backups ORDER BY id", "SELECT backup_id FROM restores"],
    )
    assert [len(row) for row in backups] == [16, 16]
    assert restores == [(1,)]
    command.upgrade(config, "head")
    assert run_sql(metadata_url, ["SELECT database_name FROM backups ORDER BY id"]) == [
        [("Ma Base",), (None,)]
    ]
