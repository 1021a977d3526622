"""index mentions by source and time: the digest's per-source counts without a table scan

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_mentions_source_occurred", "mentions", ["source_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_mentions_source_occurred", table_name="mentions")
