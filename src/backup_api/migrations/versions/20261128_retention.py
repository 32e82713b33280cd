"""retention policies, and backups kept out of retention

Revision ID: 0007_retention
Revises: 0006_schedules
Create Date: 2026-11-28 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_retention"
down_revision = "0006_schedules"
branch_labels = None
depends_on = None

_KEEP_IDS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("database_id", sa.Integer(), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=False),
        sa.Column("keep_hourly", sa.Integer(), nullable=False),
        sa.Column("keep_daily", sa.Integer(), nullable=False),
        sa.Column("keep_weekly", sa.Integer(), nullable=False),
        sa.Column("keep_monthly", sa.Integer(), nullable=False),
        sa.Column("keep_yearly", sa.Integer(), nullable=False),
        sa.Column("max_age_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["database_id"], ["databases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("database_id"),
    )
    # SQLite rebuilds the table for a NOT NULL column: it must keep AUTOINCREMENT (a deleted
    # backup's id never names another one).
    with op.batch_alter_table("backups", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(
            sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("backups", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("pinned")
    op.drop_table("retention_policies")
