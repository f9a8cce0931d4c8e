"""Recovery: temporary passcodes, online cards, verifications, reset codes, outbox (issue 4).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from securelogin.storage.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "online_cards",
        sa.Column("card_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("values_sealed", sa.Text(), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("activation_challenge", sa.String(length=64), nullable=True),
        sa.Column("activated_at", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_online_cards_user_id_users")
        ),
        sa.PrimaryKeyConstraint("card_id", name=op.f("pk_online_cards")),
    )
    with op.batch_alter_table("online_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_online_cards_user_id"), ["user_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "message_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_outbox_user_id_users")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_outbox")),
    )
    op.create_table(
        "reset_codes",
        sa.Column("code_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=255), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("issued_by", sa.String(length=240), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_reset_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("code_id", name=op.f("pk_reset_codes")),
    )
    with op.batch_alter_table("reset_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reset_codes_user_id"), ["user_id"], unique=False)

    op.create_table(
        "temporary_passcodes",
        sa.Column("passcode_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=255), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("issued_by", sa.String(length=240), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_temporary_passcodes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("passcode_id", name=op.f("pk_temporary_passcodes")),
    )
    with op.batch_alter_table("temporary_passcodes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_temporary_passcodes_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "verifications",
        sa.Column("verification_id", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("by_email", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["security_answers.answer_id"],
            name=op.f("fk_verifications_answer_id_security_answers"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.staff_id"], name=op.f("fk_verifications_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_verifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("verification_id", name=op.f("pk_verifications")),
    )
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verifications_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifications_user_id"))

    op.drop_table("verifications")
    with op.batch_alter_table("temporary_passcodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_temporary_passcodes_user_id"))

    op.drop_table("temporary_passcodes")
    with op.batch_alter_table("reset_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reset_codes_user_id"))

    op.drop_table("reset_codes")
    op.drop_table("outbox")
    with op.batch_alter_table("online_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_online_cards_user_id"))

    op.drop_table("online_cards")
