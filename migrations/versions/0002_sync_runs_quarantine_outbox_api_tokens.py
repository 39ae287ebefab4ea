"""Sync runs, quarantined records, debtor refresh times, the outbox, API tokens; debt close reasons and contacts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:03:11.236236
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_api_tokens_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "debtor_refreshes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_id", sa.String(length=32), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_debtor_refreshes_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debtor_refreshes")),
        sa.UniqueConstraint(
            "agency_id", "country", "tax_id", name=op.f("uq_debtor_refreshes_agency_id_country_tax_id")
        ),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name=op.f("ck_outbox_messages_status_known")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_messages_attempts_not_negative")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_outbox_messages_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_messages_key")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_messages_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index("ix_outbox_messages_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("changed_since", sa.DateTime(), nullable=True),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('full', 'incremental', 'refresh', 'push')", name=op.f("ck_sync_runs_kind_known")),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'abandoned')", name=op.f("ck_sync_runs_status_known")
        ),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_sync_runs_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_runs_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(
            "uq_sync_runs_one_running",
            ["agency_id"],
            unique=True,
            sqlite_where=sa.text("status = 'running' AND kind IN ('full', 'incremental')"),
            postgresql_where=sa.text("status = 'running' AND kind IN ('full', 'incremental')"),
        )

    op.create_table(
        "quarantined_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("sync_run_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'retried', 'dismissed')", name=op.f("ck_quarantined_records_status_known")
        ),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_quarantined_records_agency_id_agencies")),
        sa.ForeignKeyConstraint(
            ["sync_run_id"], ["sync_runs.id"], name=op.f("fk_quarantined_records_sync_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_records")),
    )
    with op.batch_alter_table("quarantined_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantined_records_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantined_records_sync_run_id"), ["sync_run_id"], unique=False)

    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_interval_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("refresh_max_age_seconds", sa.Integer(), nullable=False, server_default=sa.text("900"))
        )
        batch_op.add_column(sa.Column("synced_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_full_sync_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("contact_phone", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("closed_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("review_reason", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.drop_column("review_reason")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("closed_reason")
        batch_op.drop_column("content_hash")
        batch_op.drop_column("contact_phone")
        batch_op.drop_column("contact_email")

    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_column("last_full_sync_at")
        batch_op.drop_column("synced_until")
        batch_op.drop_column("refresh_max_age_seconds")
        batch_op.drop_column("sync_interval_minutes")

    with op.batch_alter_table("quarantined_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_records_sync_run_id"))
        batch_op.drop_index(batch_op.f("ix_quarantined_records_agency_id"))

    op.drop_table("quarantined_records")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_sync_runs_one_running",
            sqlite_where=sa.text("status = 'running' AND kind IN ('full', 'incremental')"),
            postgresql_where=sa.text("status = 'running' AND kind IN ('full', 'incremental')"),
        )
        batch_op.drop_index(batch_op.f("ix_sync_runs_agency_id"))

    op.drop_table("sync_runs")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_due")
        batch_op.drop_index(batch_op.f("ix_outbox_messages_agency_id"))

    op.drop_table("outbox_messages")
    op.drop_table("debtor_refreshes")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_agency_id"))

    op.drop_table("api_tokens")
