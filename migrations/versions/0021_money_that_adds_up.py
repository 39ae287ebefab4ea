"""Reserved for issue 21: withholdings fixed when paid, refunds that reverse them, payouts reconciled; no schema change yet.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 18:20:00

Several issues are worked on side by side, each with its own revision in a fixed order so that
their migrations chain without renumbering when they land.
"""

from __future__ import annotations

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
