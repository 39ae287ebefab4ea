"""Reserved for issue 17: the ERP contract, agencies without code, incremental syncs; no schema change yet.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 18:20:00

Several issues are worked on side by side, each with its own revision in a fixed order so that
their migrations chain without renumbering when they land.
"""

from __future__ import annotations

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
