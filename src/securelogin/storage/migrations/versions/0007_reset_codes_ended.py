"""A reset code ends when a newer one is given or a reset succeeds (R8.3: one open code).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from securelogin.storage.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reset_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reset_codes", schema=None) as batch_op:
        batch_op.drop_column("ended_at")
