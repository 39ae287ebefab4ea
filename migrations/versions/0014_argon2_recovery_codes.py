"""Recovery codes hashed with argon2: room for an argon2id hash in ``staff_recovery_codes.code_hash``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 16:00:00

A code was kept as the unsalted SHA-256 hex of the code (64 characters); new codes are kept as an
argon2id hash (97 characters with the parameters in use), and an old SHA-256 is upgraded to
"sha256+" and an argon2id hash of it when its owner next passes the second factor. No data
changes here: the old hashes keep working as they are until then.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_recovery_codes", schema=None) as batch_op:
        batch_op.alter_column(
            "code_hash", existing_type=sa.String(length=64), type_=sa.String(length=255), existing_nullable=False
        )


def downgrade() -> None:
    # The code before this revision reads only SHA-256 hashes: argon2 ones would not fit the
    # column and could never match, so those codes go (the person can ask for a 2FA reset).
    op.execute(sa.text("DELETE FROM staff_recovery_codes WHERE length(code_hash) > 64"))
    with op.batch_alter_table("staff_recovery_codes", schema=None) as batch_op:
        batch_op.alter_column(
            "code_hash", existing_type=sa.String(length=255), type_=sa.String(length=64), existing_nullable=False
        )
