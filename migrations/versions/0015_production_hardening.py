"""Reserved for issue 15: production on several processes (session versions, guest look-up failures); no schema change yet.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 18:20:00

Several issues are worked on side by side, each with its own revision in a fixed order so that
their migrations chain without renumbering when they land.
"""

from __future__ import annotations

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
