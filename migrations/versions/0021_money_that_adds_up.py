"""The withholdings ledger: each payment line's split fixed when paid, refunds that reverse it; the sandbox's own charges.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 18:20:00

- ``split_entries``: per payment line, one row per withholding of its kind (in order, with the
  rate used) and one for the agency's own part (beneficiary ""), adding up to the line; a refund
  adds negative rows against those parts, in proportion, adding up to minus the refund.
- ``split_day_totals``: the entries summed per agency, local day, kind and beneficiary, kept
  in the same transaction as the entries, for the settlement report.
- ``sandbox_charges``: the sandbox card provider's own record of each charge, so its payments
  interrupted between the charge and our record of it can be reconciled like Stripe's.

**Back-fill, and what it cannot know.** Every payment already received (succeeded, partially
refunded or refunded) is split now, and every succeeded refund reversed in order, with the
same rules the app applies from now on (``app.domain.withholdings``, imported rather than
copied so the back-filled rows are exactly what the app would have written). But the history
of the agencies' withholding settings was not kept before this revision: **past splits use the
settings in force on the day this migration runs**, not those in force when each payment was
made. A settlement of a past day after this upgrade shows those splits; the audit log's
"settings.update" entries tell what the rates were before, should an earlier day need a
correction by hand. From this revision on, each split is fixed when the payment succeeds.

The back-fill reads the payments in batches and runs in Python; count about a minute per
million payment lines.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from app.domain.withholdings import reverse_in_proportion, split_line, withholdings_for_kind

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_RECEIVED = ("succeeded", "partially_refunded", "refunded")
_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "sandbox_charges",
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("provider_reference", sa.String(length=100), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("decline_code", sa.String(length=64), nullable=True),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("card_brand", sa.String(length=20), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_sandbox_charges_amount_positive")),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_sandbox_charges")),
        sa.UniqueConstraint("provider_reference", name=op.f("uq_sandbox_charges_provider_reference")),
    )
    split_day_totals = op.create_table(
        "split_day_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("beneficiary", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("collected_minor", sa.Integer(), nullable=False),
        sa.Column("reversed_minor", sa.Integer(), nullable=False),
        sa.CheckConstraint("collected_minor >= 0", name=op.f("ck_split_day_totals_collected_not_negative")),
        sa.CheckConstraint("lines >= 0", name=op.f("ck_split_day_totals_lines_not_negative")),
        sa.CheckConstraint("reversed_minor >= 0", name=op.f("ck_split_day_totals_reversed_not_negative")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_split_day_totals_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_day_totals")),
        sa.UniqueConstraint(
            "agency_id", "day", "kind", "beneficiary", name=op.f("uq_split_day_totals_agency_id_day_kind_beneficiary")
        ),
    )
    split_entries = op.create_table(
        "split_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("payment_line_id", sa.Integer(), nullable=False),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("beneficiary", sa.String(length=100), nullable=False),
        sa.Column("percent", sa.String(length=20), nullable=True),
        sa.Column("fixed_minor", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booked_at", sa.DateTime(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.CheckConstraint(
            "(refund_id IS NULL AND amount_minor >= 0) OR (refund_id IS NOT NULL AND amount_minor < 0)",
            name=op.f("ck_split_entries_sign_follows_source"),
        ),
        sa.CheckConstraint("percent IS NULL OR fixed_minor IS NULL", name=op.f("ck_split_entries_one_rate")),
        sa.CheckConstraint("position >= 0", name=op.f("ck_split_entries_position_not_negative")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_split_entries_agency_id_agencies")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_split_entries_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["payment_line_id"],
            ["payment_lines.id"],
            name=op.f("fk_split_entries_payment_line_id_payment_lines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_split_entries_refund_id_refunds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_entries")),
    )
    op.create_index("ix_split_entries_agency_id_day", "split_entries", ["agency_id", "day"], unique=False)
    op.create_index(op.f("ix_split_entries_payment_id"), "split_entries", ["payment_id"], unique=False)
    op.create_index(op.f("ix_split_entries_payment_line_id"), "split_entries", ["payment_line_id"], unique=False)
    op.create_index(op.f("ix_split_entries_refund_id"), "split_entries", ["refund_id"], unique=False)
    _back_fill(op.get_bind(), split_entries, split_day_totals)


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.replace(tzinfo=UTC).astimezone(zone).date()


def _back_fill(connection: sa.Connection, split_entries: sa.Table, split_day_totals: sa.Table) -> None:
    """Split every received payment line and reverse every succeeded refund, at today's settings."""
    agencies = sa.table(
        "agencies", sa.column("id", sa.Integer), sa.column("timezone", sa.String), sa.column("withholdings", sa.JSON)
    )
    payments = sa.table(
        "payments",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("currency", sa.String),
        sa.column("created_at", sa.DateTime),
        sa.column("completed_at", sa.DateTime),
    )
    lines = sa.table(
        "payment_lines",
        sa.column("id", sa.Integer),
        sa.column("payment_id", sa.Integer),
        sa.column("agency_id", sa.Integer),
        sa.column("debt_id", sa.Integer),
        sa.column("item_id", sa.Integer),
        sa.column("amount_minor", sa.Integer),
    )
    debts = sa.table("debts", sa.column("id", sa.Integer), sa.column("kind", sa.String))
    items = sa.table("catalog_items", sa.column("id", sa.Integer), sa.column("kind", sa.String))
    refunds = sa.table(
        "refunds",
        sa.column("id", sa.Integer),
        sa.column("payment_id", sa.Integer),
        sa.column("agency_id", sa.Integer),
        sa.column("amount_minor", sa.Integer),
        sa.column("currency", sa.String),
        sa.column("status", sa.String),
        sa.column("created_at", sa.DateTime),
        sa.column("completed_at", sa.DateTime),
    )
    settings = {
        agency_id: (ZoneInfo(timezone or "Europe/Athens"), withholdings or {})
        for agency_id, timezone, withholdings in connection.execute(
            sa.select(agencies.c.id, agencies.c.timezone, agencies.c.withholdings)
        )
    }
    # (agency, day, kind, beneficiary) -> [currency, lines, collected, reversed]
    totals: dict[tuple[int, date, str, str], list] = {}
    # (payment, agency) -> [[line id, position, kind, beneficiary, held], ...], only of the shares
    # some refund reverses (memory stays small however many payments there are)
    held: dict[tuple[int, int], list[list]] = defaultdict(list)
    refunded_shares = {
        (payment_id, agency_id)
        for payment_id, agency_id in connection.execute(
            sa.select(refunds.c.payment_id, refunds.c.agency_id).where(refunds.c.status == "succeeded").distinct()
        )
    }
    kind = sa.func.coalesce(debts.c.kind, items.c.kind, "unknown")
    statement = (
        sa.select(
            lines.c.id, lines.c.payment_id, lines.c.agency_id, lines.c.amount_minor, kind,
            payments.c.currency, sa.func.coalesce(payments.c.completed_at, payments.c.created_at),
        )
        .select_from(lines)
        .join(payments, payments.c.id == lines.c.payment_id)
        .outerjoin(debts, debts.c.id == lines.c.debt_id)
        .outerjoin(items, items.c.id == lines.c.item_id)
        .where(payments.c.status.in_(_RECEIVED))
        .order_by(lines.c.id)
    )  # fmt: skip
    rows: list[dict] = []
    for line_id, payment_id, agency_id, amount_minor, line_kind, currency, booked_at in connection.execute(statement):
        if isinstance(booked_at, str):  # coalesce() loses the column type on SQLite
            booked_at = datetime.fromisoformat(booked_at)
        booked_at = booked_at.replace(tzinfo=None)
        zone, withholdings = settings[agency_id]
        day = _local_day(booked_at, zone)
        split = split_line(amount_minor, currency, withholdings_for_kind(withholdings, line_kind))
        parts = [
            (share.name, None if share.withholding.percent is None else str(share.withholding.percent),
             share.withholding.fixed_minor, share.amount_minor)
            for share in split.shares
        ] + [("", None, None, split.remainder_minor)]  # fmt: skip
        for position, (beneficiary, percent, fixed_minor, part_minor) in enumerate(parts):
            rows.append({
                "agency_id": agency_id, "payment_id": payment_id, "payment_line_id": line_id, "refund_id": None,
                "kind": line_kind, "position": position, "beneficiary": beneficiary, "percent": percent,
                "fixed_minor": fixed_minor, "amount_minor": part_minor, "currency": currency,
                "booked_at": booked_at, "day": day,
            })  # fmt: skip
            total = totals.setdefault((agency_id, day, line_kind, beneficiary), [currency, 0, 0, 0])
            total[1] += 1 if beneficiary == "" else 0
            total[2] += part_minor
            if (payment_id, agency_id) in refunded_shares:
                held[(payment_id, agency_id)].append([line_id, position, line_kind, beneficiary, part_minor])
        if len(rows) >= _BATCH:
            connection.execute(split_entries.insert(), rows)
            rows = []

    refunded = connection.execute(
        sa.select(
            refunds.c.id, refunds.c.payment_id, refunds.c.agency_id, refunds.c.amount_minor, refunds.c.currency,
            sa.func.coalesce(refunds.c.completed_at, refunds.c.created_at),
        )
        .where(refunds.c.status == "succeeded")
        .order_by(refunds.c.id)
    )  # fmt: skip
    for refund_id, payment_id, agency_id, amount_minor, currency, booked_at in refunded:
        if isinstance(booked_at, str):
            booked_at = datetime.fromisoformat(booked_at)
        booked_at = booked_at.replace(tzinfo=None)
        cells = held.get((payment_id, agency_id), [])
        still = [cell[4] for cell in cells]
        if not cells or amount_minor > sum(still):
            continue  # a refund of a payment never received: nothing was split to reverse
        day = _local_day(booked_at, settings[agency_id][0])
        for cell, taken in zip(cells, reverse_in_proportion(amount_minor, still), strict=True):
            if not taken:
                continue
            cell[4] -= taken
            line_id, position, line_kind, beneficiary, _held = cell
            rows.append({
                "agency_id": agency_id, "payment_id": payment_id, "payment_line_id": line_id, "refund_id": refund_id,
                "kind": line_kind, "position": position, "beneficiary": beneficiary, "percent": None,
                "fixed_minor": None, "amount_minor": -taken, "currency": currency, "booked_at": booked_at, "day": day,
            })  # fmt: skip
            total = totals.setdefault((agency_id, day, line_kind, beneficiary), [currency, 0, 0, 0])
            total[3] += taken
        if len(rows) >= _BATCH:
            connection.execute(split_entries.insert(), rows)
            rows = []
    if rows:
        connection.execute(split_entries.insert(), rows)
    day_rows = [
        {"agency_id": agency_id, "day": day, "kind": line_kind, "beneficiary": beneficiary, "currency": currency,
         "lines": count, "collected_minor": collected, "reversed_minor": reversed_minor}
        for (agency_id, day, line_kind, beneficiary), (currency, count, collected, reversed_minor) in sorted(totals.items())
    ]  # fmt: skip
    for start in range(0, len(day_rows), _BATCH):
        connection.execute(split_day_totals.insert(), day_rows[start : start + _BATCH])


def downgrade() -> None:
    op.drop_index(op.f("ix_split_entries_refund_id"), table_name="split_entries")
    op.drop_index(op.f("ix_split_entries_payment_line_id"), table_name="split_entries")
    op.drop_index(op.f("ix_split_entries_payment_id"), table_name="split_entries")
    op.drop_index("ix_split_entries_agency_id_day", table_name="split_entries")
    op.drop_table("split_entries")
    op.drop_table("split_day_totals")
    op.drop_table("sandbox_charges")
