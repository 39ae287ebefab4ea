"""Initial schema: agencies, debtors, debts, installments, users, tax-ID links, quotes, payments.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:46:30.979451
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name_el", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("online_categories", sa.JSON(), nullable=False),
        sa.Column("online_kinds", sa.JSON(), nullable=True),
        sa.Column("surcharge_policy", sa.JSON(), nullable=False),
        sa.Column("installments_in_order", sa.Boolean(), nullable=False),
        sa.Column("connector", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_agencies_currency_iso")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agencies")),
        sa.UniqueConstraint("code", name=op.f("uq_agencies_code")),
    )
    op.create_table(
        "debtors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debtors")),
        sa.UniqueConstraint("country", "tax_id", name=op.f("uq_debtors_country_tax_id")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "quotes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=43), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'used')", name=op.f("ck_quotes_status_known")),
        sa.CheckConstraint("total_minor > 0", name=op.f("ck_quotes_total_positive")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_quotes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        sa.UniqueConstraint("token", name=op.f("uq_quotes_token")),
    )
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quotes_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tax_id_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_id", sa.String(length=32), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tax_id_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_id_links")),
        sa.UniqueConstraint("user_id", "country", "tax_id", name=op.f("uq_tax_id_links_user_id_country_tax_id")),
    )
    with op.batch_alter_table("tax_id_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tax_id_links_user_id"), ["user_id"], unique=False)

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("quote_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_reference", sa.String(length=100), nullable=True),
        sa.Column("card_brand", sa.String(length=20), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("failure_reason", sa.String(length=300), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_payments_status_known")),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(["quote_id"], ["quotes.id"], name=op.f("fk_payments_quote_id_quotes")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("reference", name=op.f("uq_payments_reference")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_quote_id"), ["quote_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_user_id"), ["user_id"], unique=False)

    op.create_table(
        "debts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("debtor_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("principal_minor", sa.Integer(), nullable=False),
        sa.Column("paid_minor", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("rf_reference", sa.String(length=25), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("vehicle_plate", sa.String(length=16), nullable=True),
        sa.Column("pending_payment_id", sa.Integer(), nullable=True),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("category IN ('certified', 'settled', 'uncertified')", name=op.f("ck_debts_category_known")),
        sa.CheckConstraint("status IN ('open', 'paid', 'cancelled')", name=op.f("ck_debts_status_known")),
        sa.CheckConstraint(
            "paid_minor >= 0 AND paid_minor <= principal_minor", name=op.f("ck_debts_paid_within_principal")
        ),
        sa.CheckConstraint("principal_minor >= 0", name=op.f("ck_debts_principal_not_negative")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_debts_agency_id_agencies")),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"], name=op.f("fk_debts_debtor_id_debtors")),
        sa.ForeignKeyConstraint(
            ["pending_payment_id"], ["payments.id"], name=op.f("fk_debts_pending_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debts")),
        sa.UniqueConstraint("agency_id", "external_id", name=op.f("uq_debts_agency_id_external_id")),
        sa.UniqueConstraint("agency_id", "rf_reference", name=op.f("uq_debts_agency_id_rf_reference")),
    )
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_debts_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_debts_debtor_id"), ["debtor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_debts_pending_payment_id"), ["pending_payment_id"], unique=False)

    op.create_table(
        "installments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("debt_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("paid_minor", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pending_payment_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'paid', 'cancelled')", name=op.f("ck_installments_status_known")),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_installments_amount_positive")),
        sa.CheckConstraint(
            "paid_minor >= 0 AND paid_minor <= amount_minor", name=op.f("ck_installments_paid_within_amount")
        ),
        sa.ForeignKeyConstraint(
            ["debt_id"], ["debts.id"], name=op.f("fk_installments_debt_id_debts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pending_payment_id"], ["payments.id"], name=op.f("fk_installments_pending_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installments")),
        sa.UniqueConstraint("debt_id", "number", name=op.f("uq_installments_debt_id_number")),
    )
    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_installments_debt_id"), ["debt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_installments_pending_payment_id"), ["pending_payment_id"], unique=False)

    op.create_table(
        "payment_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("debt_id", sa.Integer(), nullable=False),
        sa.Column("installment_id", sa.Integer(), nullable=True),
        sa.Column("principal_minor", sa.Integer(), nullable=False),
        sa.Column("surcharge_minor", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.CheckConstraint("amount_minor = principal_minor + surcharge_minor", name=op.f("ck_payment_lines_adds_up")),
        sa.CheckConstraint("principal_minor > 0", name=op.f("ck_payment_lines_principal_positive")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_payment_lines_agency_id_agencies")),
        sa.ForeignKeyConstraint(["debt_id"], ["debts.id"], name=op.f("fk_payment_lines_debt_id_debts")),
        sa.ForeignKeyConstraint(
            ["installment_id"], ["installments.id"], name=op.f("fk_payment_lines_installment_id_installments")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_lines_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_lines")),
    )
    with op.batch_alter_table("payment_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_lines_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_lines_debt_id"), ["debt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_lines_payment_id"), ["payment_id"], unique=False)

    op.create_table(
        "quote_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("quote_id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("debt_id", sa.Integer(), nullable=False),
        sa.Column("installment_id", sa.Integer(), nullable=True),
        sa.Column("principal_minor", sa.Integer(), nullable=False),
        sa.Column("surcharge_minor", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.CheckConstraint("amount_minor = principal_minor + surcharge_minor", name=op.f("ck_quote_lines_adds_up")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_quote_lines_agency_id_agencies")),
        sa.ForeignKeyConstraint(["debt_id"], ["debts.id"], name=op.f("fk_quote_lines_debt_id_debts")),
        sa.ForeignKeyConstraint(
            ["installment_id"], ["installments.id"], name=op.f("fk_quote_lines_installment_id_installments")
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_quote_lines_quote_id_quotes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_lines")),
    )
    with op.batch_alter_table("quote_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quote_lines_quote_id"), ["quote_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quote_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quote_lines_quote_id"))

    op.drop_table("quote_lines")
    with op.batch_alter_table("payment_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_lines_payment_id"))
        batch_op.drop_index(batch_op.f("ix_payment_lines_debt_id"))
        batch_op.drop_index(batch_op.f("ix_payment_lines_agency_id"))

    op.drop_table("payment_lines")
    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_installments_pending_payment_id"))
        batch_op.drop_index(batch_op.f("ix_installments_debt_id"))

    op.drop_table("installments")
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_debts_pending_payment_id"))
        batch_op.drop_index(batch_op.f("ix_debts_debtor_id"))
        batch_op.drop_index(batch_op.f("ix_debts_agency_id"))

    op.drop_table("debts")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_user_id"))
        batch_op.drop_index(batch_op.f("ix_payments_quote_id"))

    op.drop_table("payments")
    with op.batch_alter_table("tax_id_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tax_id_links_user_id"))

    op.drop_table("tax_id_links")
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quotes_user_id"))

    op.drop_table("quotes")
    op.drop_table("users")
    op.drop_table("debtors")
    op.drop_table("agencies")
