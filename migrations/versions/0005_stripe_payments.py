"""Stripe card payments: one provider charge per agency, processed webhook events, connected accounts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_account", sa.String(length=64), nullable=True))

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_customer", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("provider_setup", sa.String(length=100), nullable=True))

    op.create_table(
        "provider_charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("provider_reference", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_provider_charges_amount_positive")),
        sa.CheckConstraint(
            "status IN ('creating', 'requires_action', 'authorized', 'captured', 'failed', 'canceled')",
            name=op.f("ck_provider_charges_status_known"),
        ),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_provider_charges_agency_id_agencies")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_provider_charges_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_charges")),
        sa.UniqueConstraint("payment_id", "agency_id", name=op.f("uq_provider_charges_payment_id_agency_id")),
        sa.UniqueConstraint("provider_reference", name=op.f("uq_provider_charges_provider_reference")),
    )
    with op.batch_alter_table("provider_charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_charges_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provider_charges_payment_id"), ["payment_id"], unique=False)

    op.create_table(
        "provider_events",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_provider_events_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_events")),
    )


def downgrade() -> None:
    op.drop_table("provider_events")
    with op.batch_alter_table("provider_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_charges_payment_id"))
        batch_op.drop_index(batch_op.f("ix_provider_charges_agency_id"))
    op.drop_table("provider_charges")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("provider_setup")
        batch_op.drop_column("provider_customer")
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_column("stripe_account")
