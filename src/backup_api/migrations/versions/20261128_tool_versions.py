"""versions of the PostgreSQL server and of the pg_dump that wrote a backup

Revision ID: 0004_tool_versions
Revises: 0003_backup_source
Create Date: 2026-11-28 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_tool_versions"
down_revision = "0003_backup_source"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("databases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("server_version", sa.String(length=32), nullable=True))
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dump_tool_version", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.drop_column("dump_tool_version")
    with op.batch_alter_table("databases", schema=None) as batch_op:
        batch_op.drop_column("server_version")
