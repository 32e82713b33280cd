"""backups keep their source; restores name the backup of their target taken first

Revision ID: 0003_backup_source
Revises: 0002_accounts
Create Date: 2026-11-26 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_backup_source"
down_revision = "0002_accounts"
branch_labels = None
depends_on = None

SAFETY_FK = "fk_restores_safety_backup_id_backups"


SOURCE_COLUMNS = (("database_name", "name", 255), ("db_host", "host", 255), ("db_port", "port", 5))


def upgrade() -> None:
    # Plain ALTERs on "backups", never a batch copy: on SQLite, dropping the old table of a
    # copy would run the restores' ON DELETE SET NULL and unlink them from their backups.
    for column, _, length in SOURCE_COLUMNS:
        op.add_column("backups", sa.Column(column, sa.String(length=length), nullable=True))
    # Backups whose database still exists learn where they came from.
    for column, source, _ in SOURCE_COLUMNS:
        op.execute(
            f"UPDATE backups SET {column} = "  # noqa: S608 (fixed names, no input)
            f"(SELECT databases.{source} FROM databases WHERE databases.id = backups.database_id)"
            " WHERE database_id IS NOT NULL"
        )

    # Nothing references "restores": a batch copy (SQLite's way to add a foreign key) is safe.
    # The copy must keep AUTOINCREMENT (ids never reused), which reflection does not see.
    with op.batch_alter_table(
        "restores", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("safety_backup_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_restores_safety_backup_id"), ["safety_backup_id"], unique=False
        )
        batch_op.create_foreign_key(
            SAFETY_FK, "backups", ["safety_backup_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table(
        "restores", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint(SAFETY_FK, type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_restores_safety_backup_id"))
        batch_op.drop_column("safety_backup_id")

    # ALTER TABLE ... DROP COLUMN: PostgreSQL, and SQLite from 3.35 (see upgrade()).
    for column, _, _ in reversed(SOURCE_COLUMNS):
        op.execute(f"ALTER TABLE backups DROP COLUMN {column}")
