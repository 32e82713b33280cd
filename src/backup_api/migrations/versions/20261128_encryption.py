"""encryption: each database's setting (age recipients or a passphrase), what each backup
was encrypted with

Revision ID: 0009_encryption
Revises: 0008_storages
Create Date: 2026-11-28 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_encryption"
down_revision = "0008_storages"
branch_labels = None
depends_on = None

_KEEP_IDS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("databases", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column("encryption_mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("encryption_recipients", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("encryption_passphrase_encrypted", sa.Text(), nullable=True))
    with op.batch_alter_table("backups", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(
            sa.Column("encrypted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("encryption_recipients", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("encryption_passphrase_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("encryption_passphrase_encrypted")
        batch_op.drop_column("encryption_recipients")
        batch_op.drop_column("encrypted")
    with op.batch_alter_table("databases", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("encryption_passphrase_encrypted")
        batch_op.drop_column("encryption_recipients")
        batch_op.drop_column("encryption_mode")
