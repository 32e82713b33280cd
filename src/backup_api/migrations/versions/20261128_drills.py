"""restore drills: scratch databases, each backup's row counts, drill records and
schedules

Revision ID: 0012_drills
Revises: 0009_encryption
Create Date: 2026-11-28 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_drills"
down_revision = "0011_audit"
branch_labels = None
depends_on = None

_KEEP_IDS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("databases", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(
            sa.Column("scratch", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("backups", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column("table_rows", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_drill_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_drill_status", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("last_drill_finished_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "drills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backup_id", sa.Integer(), nullable=True),
        sa.Column("source_database_id", sa.Integer(), nullable=True),
        sa.Column("target_database_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_msg", sa.Text(), nullable=True),
        sa.Column("tables", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["backup_id"], ["backups.id"], ondelete="SET NULL", name="fk_drills_backup_id"
        ),
        sa.ForeignKeyConstraint(
            ["source_database_id"],
            ["databases.id"],
            ondelete="SET NULL",
            name="fk_drills_source_database_id",
        ),
        sa.ForeignKeyConstraint(
            ["target_database_id"],
            ["databases.id"],
            ondelete="SET NULL",
            name="fk_drills_target_database_id",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        **_KEEP_IDS,
    )
    op.create_index("ix_drills_user_id_id", "drills", ["user_id", "id"])
    op.create_index("ix_drills_backup_id", "drills", ["backup_id"])
    op.create_index("ix_drills_source_database_id", "drills", ["source_database_id"])
    op.create_index("ix_drills_target_database_id", "drills", ["target_database_id"])
    op.create_index("ix_drills_status", "drills", ["status"])
    op.create_table(
        "drill_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("database_id", sa.Integer(), nullable=False),
        sa.Column("target_database_id", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_drill_id", sa.Integer(), nullable=True),
        sa.Column("skipped_runs", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["database_id"], ["databases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_database_id"], ["databases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("database_id"),
        **_KEEP_IDS,
    )
    op.create_index(
        "ix_drill_schedules_target_database_id", "drill_schedules", ["target_database_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_drill_schedules_target_database_id", table_name="drill_schedules")
    op.drop_table("drill_schedules")
    for name in ("status", "target_database_id", "source_database_id", "backup_id", "user_id_id"):
        op.drop_index(f"ix_drills_{name}", table_name="drills")
    op.drop_table("drills")
    with op.batch_alter_table("backups", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("last_drill_finished_at")
        batch_op.drop_column("last_drill_status")
        batch_op.drop_column("last_drill_id")
        batch_op.drop_column("table_rows")
    with op.batch_alter_table("databases", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("scratch")
