"""off-site storages, the destinations of each database, and each backup's copies

Revision ID: 0008_storages
Revises: 0007_retention
Create Date: 2026-11-28 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_storages"
down_revision = "0007_retention"
branch_labels = None
depends_on = None

_KEEP_IDS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    op.create_table(
        "storages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=1024), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.String(length=512), nullable=False),
        sa.Column("access_key_id", sa.String(length=255), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("path_style", sa.Boolean(), nullable=False),
        sa.Column("object_lock_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        **_KEEP_IDS,
    )
    op.create_index("ix_storages_user_id", "storages", ["user_id"])
    op.create_table(
        "database_storages",
        sa.Column("database_id", sa.Integer(), nullable=False),
        sa.Column("storage_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["database_id"], ["databases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["storage_id"], ["storages.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("database_id", "storage_id"),
    )
    op.create_index("ix_database_storages_storage_id", "database_storages", ["storage_id"])
    op.create_table(
        "backup_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backup_id", sa.Integer(), nullable=False),
        sa.Column("storage_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("storage_name", sa.String(length=100), nullable=False),
        sa.Column("location", sa.String(length=2048), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("error_msg", sa.Text(), nullable=True),
        sa.Column("version_id", sa.String(length=1024), nullable=True),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["backup_id"], ["backups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["storage_id"], ["storages.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        **_KEEP_IDS,
    )
    op.create_index("ix_backup_copies_backup_id", "backup_copies", ["backup_id"])
    op.create_index("ix_backup_copies_storage_id", "backup_copies", ["storage_id"])
    op.create_index("ix_backup_copies_retry", "backup_copies", ["status", "next_retry_at"])
    # Every existing archive is the local copy of its backup.
    op.execute(
        "INSERT INTO backup_copies (backup_id, storage_id, kind, storage_name, location, "
        "object_key, status, size, error_msg, attempts, created_at, updated_at) "
        "SELECT id, NULL, 'local', 'local', db_type || '/' || filename, NULL, "
        "CASE WHEN status = 'completed' THEN 'completed' "
        "WHEN status = 'failed' THEN 'failed' ELSE 'pending' END, "
        "CASE WHEN status = 'completed' THEN size ELSE NULL END, NULL, 0, "
        "created_at, updated_at FROM backups"
    )
    with op.batch_alter_table("databases", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(
            sa.Column("keep_local", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("databases", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("keep_local")
    op.drop_index("ix_backup_copies_retry", table_name="backup_copies")
    op.drop_index("ix_backup_copies_storage_id", table_name="backup_copies")
    op.drop_index("ix_backup_copies_backup_id", table_name="backup_copies")
    op.drop_table("backup_copies")
    op.drop_index("ix_database_storages_storage_id", table_name="database_storages")
    op.drop_table("database_storages")
    op.drop_index("ix_storages_user_id", table_name="storages")
    op.drop_table("storages")
