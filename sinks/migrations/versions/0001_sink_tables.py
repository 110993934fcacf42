"""sink tables: post_engagement, thread_engagement, engagement_window, sink_tombstone

Revision ID: 0001_sink_tables
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_sink_tables"
down_revision = None
branch_labels = None
depends_on = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "post_engagement",
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        sa.Column("comments", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("pingbacks", sa.Integer(), nullable=False),
        sa.Column("trackbacks", sa.Integer(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.Column("post_author_replies", sa.Integer(), nullable=False),
        sa.Column("max_depth", sa.Integer(), nullable=False),
        sa.Column("first_activity", _tz(), nullable=True),
        sa.Column("last_activity", _tz(), nullable=True),
        sa.Column("time_to_first_comment_seconds", sa.Double(), nullable=True),
        sa.Column("waiting_replies", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("site", "post_id"),
    )
    op.create_table(
        "thread_engagement",
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        sa.Column("root_comment_id", sa.BigInteger(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.Column("post_author_answered", sa.Boolean(), nullable=False),
        sa.Column("time_to_first_reply_seconds", sa.Double(), nullable=True),
        sa.Column("last_activity", _tz(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("site", "post_id", "root_comment_id"),
    )
    op.create_table(
        "engagement_window",
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        sa.Column("window", sa.String(8), nullable=False),
        sa.Column("window_start", _tz(), nullable=False),
        sa.Column("comments", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("pingbacks", sa.Integer(), nullable=False),
        sa.Column("trackbacks", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("site", "post_id", "window", "window_start"),
    )
    op.create_table(
        "sink_tombstone",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )


def downgrade() -> None:
    for table in ("sink_tombstone", "engagement_window", "thread_engagement", "post_engagement"):
        op.drop_table(table)
