"""Reserved for issue 19: automatic notices by e-mail, SMS and inbox; no schema change yet.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 18:20:00

Several issues are worked on side by side, each with its own revision in a fixed order so that
their migrations chain without renumbering when they land.
"""

from __future__ import annotations

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
