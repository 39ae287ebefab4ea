"""Agency provider credentials (encrypted) and notification texts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 04:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: Every column is nullable with no default: an agency already there has no credentials stored
#: (the platform's keys keep serving it) and adds nothing to its e-mails.
_COLUMNS = [
    ("stripe_secret_key_encrypted", sa.Text()),
    ("stripe_secret_key_hint", sa.String(length=4)),
    ("stripe_secret_key_set_at", sa.DateTime()),
    ("stripe_webhook_secret_encrypted", sa.Text()),
    ("stripe_webhook_secret_hint", sa.String(length=4)),
    ("stripe_webhook_secret_set_at", sa.DateTime()),
    ("receipt_note_el", sa.String(length=500)),
    ("receipt_note_en", sa.String(length=500)),
    ("refund_note_el", sa.String(length=500)),
    ("refund_note_en", sa.String(length=500)),
]


def upgrade() -> None:
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        for name, type_ in _COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        for name, _type in reversed(_COLUMNS):
            batch_op.drop_column(name)
