"""Guest payments by payment code.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guest_second_factor", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))

    # Guests name a debt by its code alone: RF reference or the agency's notice (ERP) number.
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_debts_rf_reference"), ["rf_reference"], unique=False)
        batch_op.create_index(batch_op.f("ix_debts_external_id"), ["external_id"], unique=False)

    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("payer_email", sa.String(length=254), nullable=True))

    op.create_table(
        "guest_lookup_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_failed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_guest_lookup_failures_failures_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guest_lookup_failures")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_guest_lookup_failures_code_hash")),
    )


def downgrade() -> None:
    op.drop_table("guest_lookup_failures")

    # Guest quotes have no account to belong to: detach their payments, then drop them.
    op.execute("UPDATE payments SET quote_id = NULL WHERE quote_id IN (SELECT id FROM quotes WHERE user_id IS NULL)")
    op.execute("DELETE FROM quote_lines WHERE quote_id IN (SELECT id FROM quotes WHERE user_id IS NULL)")
    op.execute("DELETE FROM quotes WHERE user_id IS NULL")
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_column("payer_email")
        batch_op.alter_column("user_id", existing_type=sa.Integer(), nullable=False)

    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_debts_external_id"))
        batch_op.drop_index(batch_op.f("ix_debts_rf_reference"))

    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_column("guest_second_factor")
