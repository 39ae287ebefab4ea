"""Reserved for issue 20: auto-pay with a saved card, and the partner API; no schema change yet.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 18:20:00

Several issues are worked on side by side, each with its own revision in a fixed order so that
their migrations chain without renumbering when they land.
"""

from __future__ import annotations

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
