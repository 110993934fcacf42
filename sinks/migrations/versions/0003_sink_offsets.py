"""sink_offset: the sink's position in each output topic partition, kept with the rows

Revision ID: 0003_sink_offsets
Revises: 0002_generations
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sink_offsets"
down_revision = "0002_generations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sink_offset",
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )


def downgrade() -> None:
    op.drop_table("sink_offset")
