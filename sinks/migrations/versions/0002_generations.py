"""generations: active_generation, sink_generation and the *_current views

Revision ID: 0002_generations
Revises: 0001_sink_tables
Create Date: 2026-11-26

The aggregate tables of generation 1 are not touched (no rewrite or lock of large live tables);
a rebuild's tables (<table>_g<N>) are created by `blogpulse reprocess start` (sinks/generations.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002_generations"
down_revision = "0001_sink_tables"
branch_labels = None
depends_on = None

AGGREGATE_TABLES = ("post_engagement", "thread_engagement", "engagement_window")


def upgrade() -> None:
    active = op.create_table(
        "active_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    registry = op.create_table(
        "sink_generation",
        sa.Column("generation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("app_id", sa.String(255), nullable=False),
        sa.Column("from_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caught_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("generation"),
    )
    op.bulk_insert(active, [{"id": 1, "generation": 1}])
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # the models store naive UTC text on SQLite
    op.bulk_insert(
        registry,
        [
            {
                "generation": 1,
                "app_id": "(live)",
                "from_time": None,
                "started_at": now,
                "caught_up_at": now,
            }
        ],
    )
    for table in AGGREGATE_TABLES:
        op.execute(f"CREATE VIEW {table}_current AS SELECT * FROM {table}")


def downgrade() -> None:
    for table in AGGREGATE_TABLES:
        op.execute(f"DROP VIEW IF EXISTS {table}_current")
    op.drop_table("sink_generation")
    op.drop_table("active_generation")
