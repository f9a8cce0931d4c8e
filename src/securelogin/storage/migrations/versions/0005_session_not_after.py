"""A session opened with a temporary credential ends with it (R6.3, R7.4, R5.5).

``sessions.not_after`` is the end of the credential's window the session's access depends
on, or the first self-activation of one of the user's mailed devices, if sooner than the
door's own limit. Sessions that exist before this migration keep NULL (the door's limit).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from securelogin.storage.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_after", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("not_after")
