"""Lockout failures are pending while evaluated, settled when wrong (R3.5 without false locks).

Rows that exist before this migration were all failures: they are marked settled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from securelogin.storage.types import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lockout_failures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settled_at", UtcDateTime(), nullable=True))
    op.execute("UPDATE lockout_failures SET settled_at = failed_at")


def downgrade() -> None:
    with op.batch_alter_table("lockout_failures", schema=None) as batch_op:
        batch_op.drop_column("settled_at")
