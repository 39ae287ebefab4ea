"""Refunds: per agency share of a payment, with the statuses they give a payment.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('pending', 'succeeded', 'failed')"
NEW_STATUSES = "status IN ('pending', 'succeeded', 'failed', 'partially_refunded', 'refunded')"


def upgrade() -> None:
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reopen_debts_on_refund", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.alter_column("status", existing_type=sa.String(length=16), type_=sa.String(length=24))
        batch_op.drop_constraint(op.f("ck_payments_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", NEW_STATUSES)
    op.create_table(
        "refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=48), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("reopened_debts", sa.Boolean(), nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=True),
        sa.Column("provider_reference", sa.String(length=100), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_refunds_amount_positive")),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_refunds_status_known")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_refunds_agency_id_agencies")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"], ["users.id"], name=op.f("fk_refunds_requested_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("reference", name=op.f("uq_refunds_reference")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_payment_id"), ["payment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_payment_id"))
        batch_op.drop_index(batch_op.f("ix_refunds_agency_id"))
    op.drop_table("refunds")
    op.execute("UPDATE payments SET status = 'succeeded' WHERE status IN ('partially_refunded', 'refunded')")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_payments_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", OLD_STATUSES)
        batch_op.alter_column("status", existing_type=sa.String(length=24), type_=sa.String(length=16))
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_column("reopen_debts_on_refund")
