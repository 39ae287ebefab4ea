"""Accounts: e-mail verification, phone, notification choices, deletion; tax-ID proof by code.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:00:31.879107
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tax_id_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proof_method", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("code_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")))
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_verified_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("notify_email", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("notify_sms", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("password_changed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("password_changed_at")
        batch_op.drop_column("notify_sms")
        batch_op.drop_column("notify_email")
        batch_op.drop_column("phone")
        batch_op.drop_column("email_verified_at")

    with op.batch_alter_table("tax_id_links", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_attempts")
        batch_op.drop_column("code_expires_at")
        batch_op.drop_column("code_hash")
        batch_op.drop_column("proof_method")
