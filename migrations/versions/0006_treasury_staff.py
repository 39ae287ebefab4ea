"""Treasury staff and roles.

Staff memberships per agency, platform administrators, the staff's TOTP second factor and
recovery codes, e-mailed invitations, and the indexes behind the treasury's payment history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_platform_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("totp_confirmed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))

    op.create_table(
        "staff_memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("role IN ('view', 'refund', 'admin')", name=op.f("ck_staff_memberships_role_known")),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_staff_memberships_agency_id_agencies"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_staff_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_memberships")),
        sa.UniqueConstraint("user_id", "agency_id", name=op.f("uq_staff_memberships_user_id_agency_id")),
    )
    op.create_index(op.f("ix_staff_memberships_agency_id"), "staff_memberships", ["agency_id"], unique=False)
    op.create_index(op.f("ix_staff_memberships_user_id"), "staff_memberships", ["user_id"], unique=False)

    op.create_table(
        "staff_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_staff_recovery_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_recovery_codes")),
    )
    op.create_index(op.f("ix_staff_recovery_codes_user_id"), "staff_recovery_codes", ["user_id"], unique=False)

    op.create_table(
        "staff_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("role IN ('view', 'refund', 'admin')", name=op.f("ck_staff_invitations_role_known")),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_staff_invitations_agency_id_agencies"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_id"], ["users.id"], name=op.f("fk_staff_invitations_invited_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_invitations")),
    )
    op.create_index(op.f("ix_staff_invitations_agency_id"), "staff_invitations", ["agency_id"], unique=False)

    op.create_index("ix_payments_created_at_id", "payments", ["created_at", "id"], unique=False)
    op.create_index("ix_payment_lines_agency_id_payment_id", "payment_lines", ["agency_id", "payment_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_payment_lines_agency_id_payment_id", table_name="payment_lines")
    op.drop_index("ix_payments_created_at_id", table_name="payments")
    op.drop_index(op.f("ix_staff_invitations_agency_id"), table_name="staff_invitations")
    op.drop_table("staff_invitations")
    op.drop_index(op.f("ix_staff_recovery_codes_user_id"), table_name="staff_recovery_codes")
    op.drop_table("staff_recovery_codes")
    op.drop_index(op.f("ix_staff_memberships_user_id"), table_name="staff_memberships")
    op.drop_index(op.f("ix_staff_memberships_agency_id"), table_name="staff_memberships")
    op.drop_table("staff_memberships")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_confirmed_at")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("is_platform_admin")
