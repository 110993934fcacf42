"""`blogpulse db upgrade` and `blogpulse stats`."""

from __future__ import annotations

import argparse
import sys

from streams.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser(
        "db",
        help="sink database: migrations",
        description="Manage the sink database (BLOGPULSE_DB, default sqlite:///blogpulse.db).",
    )
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.required = True
    up = db_sub.add_parser(
        "upgrade",
        help="create or migrate the sink tables to the latest revision",
        description="Run the Alembic migrations of the sink tables up to head.",
    )
    up.set_defaults(func=_run_upgrade)

    st = subparsers.add_parser(
        "stats",
        help="print what is in the sink database",
        description="Per-post engagement from the sink database (BLOGPULSE_DB), most commented "
        "first. With --post SITE/ID: that post, its threads and its hour/day windows.",
    )
    st.add_argument("--post", metavar="SITE/ID", help="one post: its row, threads and windows")
    st.add_argument("--json", action="store_true", help="print JSON instead of tables")
    st.add_argument("--limit", type=int, default=50, metavar="N", help="posts to list (default 50)")
    st.set_defaults(func=_run_stats)


def _engine(settings: Settings):
    from sinks.db import make_engine

    return make_engine(settings.db_url)


def _fail(message: str, code: int = 1) -> int:
    print(f"blogpulse: {message}", file=sys.stderr)
    return code


def _run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from sinks import db

    url = settings.db_url
    try:
        engine = _engine(settings)
        before = db.current_revision(engine)
        db.upgrade(engine)
        after = db.current_revision(engine)
    except db.BadDatabaseUrl as exc:
        return _fail(str(exc), 2)
    except SQLAlchemyError as exc:
        return _fail(
            f"database {db.masked(url)}: {type(exc).__name__}: "
            f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
        )
    if before == after:
        print(f"{db.masked(url)}: already at revision {after}")
    else:
        print(f"{db.masked(url)}: upgraded {before or '(empty)'} -> {after}")
    return 0


def _parse_post(text: str) -> tuple[str, int] | None:
    site, _, post_id = text.rpartition("/")
    if not site or not post_id.isdigit() or int(post_id) < 1:
        return None
    return site, int(post_id)


def _run_stats(args: argparse.Namespace, settings: Settings) -> int:
    import orjson
    from sqlalchemy.exc import SQLAlchemyError

    from sinks import db, stats

    if args.limit < 1:
        return _fail("--limit: must be at least 1", 2)
    post = None
    if args.post is not None:
        post = _parse_post(args.post)
        if post is None:
            return _fail(
                f"--post: expected SITE/ID with a positive numeric ID, got {args.post!r}", 2
            )
    url = settings.db_url
    try:
        engine = _engine(settings)
        if post:
            detail = stats.post_detail(engine, *post)
        else:
            summary = stats.summary(engine, args.limit)
    except db.BadDatabaseUrl as exc:
        return _fail(str(exc), 2)
    except stats.NotMigrated as exc:
        return _fail(f"{db.masked(url)}: {exc}")
    except stats.NoSuchPost as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:
        return _fail(
            f"database {db.masked(url)}: {type(exc).__name__}: "
            f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
        )

    if args.json:
        payload = (
            detail
            if post
            else {
                "posts": summary.posts,
                "threads": summary.threads,
                "windows": summary.windows,
                "top_posts": summary.rows,
            }
        )
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if post:
        p = detail["post"]
        print(f"post {p['site']}/{p['post_id']} (version {p['version']})")
        for name in stats.POST_COLUMNS[2:-1]:
            print(f"  {name:<30} {'-' if p[name] is None else p[name]}")
        print(f"\nthreads: {len(detail['threads'])}")
        if detail["threads"]:
            print(stats.table(detail["threads"], stats.THREAD_COLUMNS))
        days = [w for w in detail["windows"] if w["window"] == "day"]
        print(f"\nday windows: {len(days)} (hour windows: {len(detail['windows']) - len(days)})")
        if days:
            print(
                stats.table(
                    days, ("window_start", "comments", "replies", "pingbacks", "trackbacks")
                )
            )
        return 0
    if summary.posts == 0:
        print(
            f"{db.masked(url)}: no posts yet (the sink has written nothing; is the worker running?)"
        )
        return 0
    print(
        f"{db.masked(url)}: {summary.posts} posts, {summary.threads} threads, {summary.windows} windows"
    )
    shown = (
        f"top {len(summary.rows)} by comments" if summary.posts > len(summary.rows) else "all posts"
    )
    print(f"{shown}:\n")
    print(stats.table(summary.rows, stats.POST_TABLE))
    return 0
