"""Audit log and agency settings.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
