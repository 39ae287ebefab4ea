"""Reserved for issue 18: payment notices and bank transfers matched from statements; no schema change yet.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 18:20:00

Several issues are worked on side by side, each with its own revision in a fixed order so that
their migrations chain without renumbering when they land.
"""

from __future__ import annotations

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
