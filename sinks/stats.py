"""What is in the sink database, for `blogpulse stats`: a readable table, or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from schemas.errors import BlogpulseError
from sinks import generations
from sinks.db import missing_tables

POST_COLUMNS = (
    "site",
    "post_id",
    "comments",
    "replies",
    "pingbacks",
    "trackbacks",
    "threads",
    "participants",
    "post_author_replies",
    "max_depth",
    "waiting_replies",
    "first_activity",
    "last_activity",
    "time_to_first_comment_seconds",
    "version",
)
THREAD_COLUMNS = (
    "root_comment_id",
    "replies",
    "depth",
    "participants",
    "post_author_answered",
    "time_to_first_reply_seconds",
    "last_activity",
    "version",
)
# Columns of the readable post table (the JSON has every column).
POST_TABLE = (
    "site",
    "post_id",
    "comments",
    "replies",
    "pingbacks",
    "trackbacks",
    "threads",
    "participants",
    "max_depth",
    "last_activity",
)


class NotMigrated(BlogpulseError):
    pass


class NoSuchPost(BlogpulseError):
    pass


@dataclass
class Summary:
    posts: int
    threads: int
    windows: int
    rows: list[dict[str, Any]]  # posts, most commented first, up to the limit


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (
            value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if not value.microsecond
            else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        )
    return value


def _row(obj: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: _plain(getattr(obj, c)) for c in columns}


def _require_schema(engine: Engine) -> None:
    missing = missing_tables(engine)
    if not missing and "active_generation" not in inspect(engine).get_table_names():
        missing = ["active_generation"]
    if missing:
        raise NotMigrated(
            f"the database has no sink tables ({', '.join(missing)} missing): "
            "run `blogpulse db upgrade`"
        )


def summary(engine: Engine, limit: int = 50) -> Summary:
    """Counts and top posts of the active generation (read in one transaction with it)."""
    _require_schema(engine)
    with engine.connect() as conn:
        t = generations.tables_for(generations.active(conn)).aggregates
        posts_n, threads_n, windows_n = (
            conn.scalar(select(func.count()).select_from(t[k])) or 0
            for k in ("posts", "threads", "windows")
        )
        p = t["posts"]
        posts = conn.execute(
            select(p).order_by(p.c.comments.desc(), p.c.site, p.c.post_id).limit(limit)
        ).all()
        return Summary(posts_n, threads_n, windows_n, rows=[_row(r, POST_COLUMNS) for r in posts])


def post_detail(engine: Engine, site: str, post_id: int) -> dict[str, Any]:
    """The post's row, its threads (largest first) and its windows (active generation)."""
    _require_schema(engine)
    with engine.connect() as conn:
        t = generations.tables_for(generations.active(conn)).aggregates
        p, th, w = t["posts"], t["threads"], t["windows"]
        post = conn.execute(select(p).where(p.c.site == site, p.c.post_id == post_id)).first()
        if post is None:
            raise NoSuchPost(f"no post {site}/{post_id} in the database")
        threads = conn.execute(
            select(th)
            .where(th.c.site == site, th.c.post_id == post_id)
            .order_by(th.c.replies.desc(), th.c.root_comment_id)
        ).all()
        windows = conn.execute(
            select(w)
            .where(w.c.site == site, w.c.post_id == post_id)
            .order_by(w.c.window, w.c.window_start)
        ).all()
        return {
            "post": _row(post, POST_COLUMNS),
            "threads": [_row(r, THREAD_COLUMNS) for r in threads],
            "windows": [
                _row(
                    r,
                    (
                        "window",
                        "window_start",
                        "comments",
                        "replies",
                        "pingbacks",
                        "trackbacks",
                        "version",
                    ),
                )
                for r in windows
            ],
        }


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """A plain-text table with a header; numbers right-aligned."""
    cells = [[("-" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r[c], (int, float)) or r[c] is None for r in rows) for c in columns]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)
        ).rstrip()

    out = [line(list(columns)), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)
