"""schedules of databases; backups say what started them

Revision ID: 0006_schedules
Revises: 0005_api_tokens
Create Date: 2026-11-28 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_schedules"
down_revision = "0005_api_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER on "backups", never a batch copy (see 0003_backup_source): every
    # backup taken so far was asked for by hand.
    op.add_column(
        "backups",
        sa.Column("trigger", sa.String(length=16), nullable=False, server_default="manual"),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("database_id", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_backup_id", sa.Integer(), nullable=True),
        sa.Column("skipped_runs", sa.Integer(), nullable=False),
        sa.Column("retry_attempt", sa.Integer(), nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["database_id"], ["databases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["last_backup_id"],
            ["backups.id"],
            ondelete="SET NULL",
            name="fk_schedules_last_backup_id",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("database_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("schedules")
    # ALTER TABLE ... DROP COLUMN: PostgreSQL, and SQLite from 3.35 (see upgrade()).
    op.execute('ALTER TABLE backups DROP COLUMN "trigger"')
