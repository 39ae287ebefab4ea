"""Agency catalog items, orders of them on quote and payment lines, and tickets.

A quote or payment line is now either a debt (as before) or a catalog item with a quantity and
the payer's answers; tickets hold and then issue seats of ticket items.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 04:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PRICE_OR_RANGE = (
    "(price_minor IS NOT NULL AND price_minor > 0 AND min_minor IS NULL AND max_minor IS NULL)"
    " OR (price_minor IS NULL AND min_minor IS NOT NULL AND max_minor IS NOT NULL"
    " AND min_minor > 0 AND max_minor >= min_minor)"
)


def upgrade() -> None:
    op.create_table(
        "catalog_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name_el", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("description_el", sa.String(length=2000), nullable=False),
        sa.Column("description_en", sa.String(length=2000), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=True),
        sa.Column("min_minor", sa.Integer(), nullable=True),
        sa.Column("max_minor", sa.Integer(), nullable=True),
        sa.Column("available_from", sa.DateTime(), nullable=True),
        sa.Column("available_until", sa.DateTime(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("max_per_order", sa.Integer(), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("requires_account", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('ticket', 'permit', 'fee', 'donation')", name=op.f("ck_catalog_items_kind_known")),
        sa.CheckConstraint(PRICE_OR_RANGE, name=op.f("ck_catalog_items_price_or_range")),
        sa.CheckConstraint("capacity IS NULL OR capacity >= 0", name=op.f("ck_catalog_items_capacity_not_negative")),
        sa.CheckConstraint("capacity IS NULL OR kind = 'ticket'", name=op.f("ck_catalog_items_capacity_for_tickets")),
        sa.CheckConstraint("max_per_order >= 1", name=op.f("ck_catalog_items_max_per_order_positive")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_catalog_items_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_items")),
        sa.UniqueConstraint("agency_id", "code", name=op.f("uq_catalog_items_agency_id_code")),
    )
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_items_agency_id"), ["agency_id"], unique=False)

    for table in ("quote_lines", "payment_lines"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("debt_id", existing_type=sa.Integer(), nullable=True)
            batch_op.add_column(sa.Column("item_id", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("quantity", sa.Integer(), server_default="1", nullable=False))
            batch_op.add_column(sa.Column("answers", sa.JSON(), nullable=True))
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_item_id_catalog_items"), "catalog_items", ["item_id"], ["id"]
            )
            batch_op.create_check_constraint("debt_or_item", "(debt_id IS NULL) <> (item_id IS NULL)")
            batch_op.create_check_constraint("items_have_no_surcharge", "item_id IS NULL OR surcharge_minor = 0")
            batch_op.create_check_constraint("quantity_positive", "quantity >= 1")
    with op.batch_alter_table("payment_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_lines_item_id"), ["item_id"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("quote_line_id", sa.Integer(), nullable=False),
        sa.Column("payment_line_id", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("held_until", sa.DateTime(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=True),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("used_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('held', 'issued', 'used', 'released')", name=op.f("ck_tickets_status_known")),
        sa.CheckConstraint("status <> 'used' OR used_at IS NOT NULL", name=op.f("ck_tickets_used_has_time")),
        sa.ForeignKeyConstraint(["item_id"], ["catalog_items.id"], name=op.f("fk_tickets_item_id_catalog_items")),
        sa.ForeignKeyConstraint(
            ["payment_line_id"], ["payment_lines.id"], name=op.f("fk_tickets_payment_line_id_payment_lines")
        ),
        sa.ForeignKeyConstraint(
            ["quote_line_id"], ["quote_lines.id"], name=op.f("fk_tickets_quote_line_id_quote_lines"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["used_by_user_id"], ["users.id"], name=op.f("fk_tickets_used_by_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("code", name=op.f("uq_tickets_code")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_item_id_status", ["item_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_payment_line_id"), ["payment_line_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_quote_line_id"), ["quote_line_id"], unique=False)


def downgrade() -> None:
    op.drop_table("tickets")
    # Lines of items cannot survive the columns that describe them.
    op.execute("DELETE FROM payment_lines WHERE item_id IS NOT NULL")
    op.execute("DELETE FROM quote_lines WHERE item_id IS NOT NULL")
    for table in ("payment_lines", "quote_lines"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == "payment_lines":
                batch_op.drop_index(batch_op.f("ix_payment_lines_item_id"))
            batch_op.drop_constraint(op.f(f"ck_{table}_quantity_positive"), type_="check")
            batch_op.drop_constraint(op.f(f"ck_{table}_items_have_no_surcharge"), type_="check")
            batch_op.drop_constraint(op.f(f"ck_{table}_debt_or_item"), type_="check")
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_item_id_catalog_items"), type_="foreignkey")
            batch_op.drop_column("answers")
            batch_op.drop_column("quantity")
            batch_op.drop_column("item_id")
            batch_op.alter_column("debt_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("catalog_items")
