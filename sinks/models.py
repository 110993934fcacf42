"""SQLAlchemy 2 models of the sink tables: one row per key of each output topic
(docs/architecture.md, "Output topics"), plus the version that guards every write.

Times are timezone-aware UTC datetimes in Python. PostgreSQL stores them as timestamptz; SQLite has
no time type, so UtcDateTime stores naive UTC text there and puts the UTC zone back on read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Integer,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator):
    """DateTime(timezone=True) that always hands back aware UTC datetimes, on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: sink times must be timezone-aware UTC")
        value = value.astimezone(UTC)
        # SQLite stores text; one naive UTC format keeps ordering and primary keys exact.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: UtcDateTime(),
        int: Integer(),
        float: Double(),
        bool: Boolean(),
    }


def _version() -> Mapped[int]:
    # Copied from the output message; a write happens only when it is greater than the stored one.
    return mapped_column(BigInteger, nullable=False)


def _updated_at() -> Mapped[datetime]:
    # When the sink last wrote the row (wall clock), not an event time.
    return mapped_column(UtcDateTime(), nullable=False)


class PostEngagement(Base):
    """engagement.posts, key "<site>/<post_id>"."""

    __tablename__ = "post_engagement"

    site: Mapped[str] = mapped_column(String(255), primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    comments: Mapped[int]
    replies: Mapped[int]
    pingbacks: Mapped[int]
    trackbacks: Mapped[int]
    threads: Mapped[int]
    participants: Mapped[int]
    post_author_replies: Mapped[int]
    max_depth: Mapped[int]
    first_activity: Mapped[datetime | None]
    last_activity: Mapped[datetime | None]
    time_to_first_comment_seconds: Mapped[float | None]
    waiting_replies: Mapped[int]
    version: Mapped[int] = _version()
    updated_at: Mapped[datetime] = _updated_at()


class ThreadEngagement(Base):
    """engagement.threads, key "<site>/<post_id>/<root_comment_id>"."""

    __tablename__ = "thread_engagement"

    site: Mapped[str] = mapped_column(String(255), primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root_comment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    replies: Mapped[int]
    depth: Mapped[int]
    participants: Mapped[int]
    post_author_answered: Mapped[bool]
    time_to_first_reply_seconds: Mapped[float | None]
    last_activity: Mapped[datetime | None]
    version: Mapped[int] = _version()
    updated_at: Mapped[datetime] = _updated_at()


class EngagementWindow(Base):
    """engagement.windows, key "<site>/<post_id>/<hour|day>/<window_start>"."""

    __tablename__ = "engagement_window"

    site: Mapped[str] = mapped_column(String(255), primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    window: Mapped[str] = mapped_column(String(8), primary_key=True)  # "hour" or "day"
    window_start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    comments: Mapped[int]
    replies: Mapped[int]
    pingbacks: Mapped[int]
    trackbacks: Mapped[int]
    version: Mapped[int] = _version()
    updated_at: Mapped[datetime] = _updated_at()


class SinkTombstone(Base):
    """The version at which a thread or window was deleted. A deleted row leaves nothing to compare
    versions against, so without this a late, older message (shuffled replay) would bring the row
    back. Keyed by aggregate kind and the output topic's key."""

    __tablename__ = "sink_tombstone"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "threads" or "windows"
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    version: Mapped[int] = _version()
    updated_at: Mapped[datetime] = _updated_at()


class SinkOffset(Base):
    """The next offset the sink reads in each output topic partition, written in the same
    transaction as the rows it read. So the database says where its copy of the aggregates stands:
    a new or emptied database has no offsets and reads the compacted topics from the start, a
    restored one reads from where its copy was, and a crash between the commit and anything else
    repeats nothing and skips nothing."""

    __tablename__ = "sink_offset"

    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = _updated_at()


class ActiveGeneration(Base):
    """One row: the generation readers see (the *_current views, `blogpulse stats`). Switching
    generations updates it and repoints the views in one transaction (sinks/generations.py)."""

    __tablename__ = "active_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    generation: Mapped[int]


class SinkGeneration(Base):
    """Every generation that has tables: 1 (the plain tables) and each rebuild (`reprocess start`)."""

    __tablename__ = "sink_generation"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    app_id: Mapped[str] = mapped_column(String(255))
    from_time: Mapped[datetime | None]  # --from of the rebuild; null = from the earliest offsets
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    caught_up_at: Mapped[datetime | None]
    # Set by cleanup: the number stays taken (its consumer group and topics may still exist).
    dropped_at: Mapped[datetime | None]


def table_of(model: type[Base]) -> Table:
    """A model's Table (SQLAlchemy types `__table__` as the wider FromClause)."""
    return cast(Table, model.__table__)


TABLES = {
    "posts": table_of(PostEngagement),
    "threads": table_of(ThreadEngagement),
    "windows": table_of(EngagementWindow),
}
