"""accounts: ids never reused, a token key per account, one-time bootstrap steps

Revision ID: 0002_accounts
Revises: 0001_initial
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import secrets
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002_accounts"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# The tables whose rows have ids that something may point to.
_TABLES = ("users", "databases", "backups", "restores")

# Moves a table's id sequence past the largest id present, never back (``top > 0``: a
# sequence never used and an empty table stay as they are, the next id being 1).
_ADVANCE_SEQUENCE = (
    "SELECT setval(seq, GREATEST(top, 1), top > 0) FROM ("
    " SELECT seq, GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}),"
    " COALESCE(pg_sequence_last_value(seq), 0)) AS top"
    " FROM (SELECT pg_get_serial_sequence('{table}', 'id')::regclass AS seq) s) t"
)


def _fill_token_keys(bind: sa.Connection) -> None:
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("token_key", sa.String))
    ids = bind.execute(sa.select(users.c.id)).scalars().all()
    for user_id in ids:
        bind.execute(
            users.update().where(users.c.id == user_id).values(token_key=secrets.token_urlsafe(32))
        )


def _normalize_emails(bind: sa.Connection) -> None:
    """Addresses are now compared after NFKC: rewrite the stored ones that differ, unless
    another account already holds the result (that one then keeps the address)."""
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))
    rows = bind.execute(sa.select(users.c.id, users.c.email)).all()
    taken = {email for _, email in rows}
    for user_id, email in rows:
        normalized = unicodedata.normalize("NFKC", email).lower()
        if normalized != email and normalized not in taken and len(normalized) <= 320:
            bind.execute(users.update().where(users.c.id == user_id).values(email=normalized))
            taken.add(normalized)


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "bootstrap",
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("step"),
    )
    # An instance that already has an admin has had its first one.
    has_admin = bind.execute(sa.text("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1")).first()
    if has_admin is not None:
        bootstrap = sa.table(
            "bootstrap", sa.column("step", sa.String), sa.column("created_at", sa.DateTime)
        )
        bind.execute(bootstrap.insert().values(step="first_admin", created_at=sa.func.now()))

    op.add_column("users", sa.Column("token_key", sa.String(length=64), nullable=True))
    # Tokens issued before carry no key: they all end here.
    _fill_token_keys(bind)
    _normalize_emails(bind)

    if bind.dialect.name != "sqlite":
        # PostgreSQL: serial columns draw from sequences, which never hand a value out twice.
        # Rows written with explicit ids (a restored dump) may lie ahead of the sequence:
        # move it past them, never back.
        op.alter_column("users", "token_key", existing_type=sa.String(length=64), nullable=False)
        for table in _TABLES:
            bind.execute(sa.text(_ADVANCE_SEQUENCE.format(table=table)))
        return
    # SQLite only changes a table by recreating it; AUTOINCREMENT makes it keep the largest
    # id ever used (sqlite_sequence) instead of reusing a deleted row's. The copy keeps the
    # rows and their ids, and the sequence starts from the largest of them.
    for table in _TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            if table == "users":
                batch.alter_column("token_key", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_key")
    op.drop_table("bootstrap")
