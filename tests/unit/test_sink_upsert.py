"""Version-guarded sink writes (sinks.upsert) on SQLite. tests/integration/test_sink_upsert_pg.py
runs these same tests on PostgreSQL by overriding the `sink_engine` fixture."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from sinks import db
from sinks.models import TABLES
from sinks.upsert import InvalidAggregate, collapse, write_batch


@pytest.fixture
def sink_engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'sink.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


# ------------------------------------------------------------------ message builders (contract)
def post(site: str, post_id: int, version: int, **fields):
    value = {
        "schema_version": 1,
        "site": site,
        "post_id": post_id,
        "version": version,
        "comments": version,
        "replies": 0,
        "pingbacks": 0,
        "trackbacks": 0,
        "threads": 1,
        "participants": 1,
        "post_author_replies": 0,
        "max_depth": 0,
        "first_activity": "2012-03-01T10:00:00Z",
        "last_activity": "2012-03-01T10:00:00Z",
        "time_to_first_comment_seconds": 60,
        "waiting_replies": 0,
        **fields,
    }
    return "posts", f"{site}/{post_id}", value


def thread(site: str, post_id: int, root: int, version: int, deleted: bool = False, **fields):
    value = {
        "schema_version": 1,
        "site": site,
        "post_id": post_id,
        "root_comment_id": root,
        "version": version,
        "replies": version,
        "depth": 1,
        "participants": 2,
        "post_author_answered": False,
        "time_to_first_reply_seconds": 12.5,
        "last_activity": "2012-03-01T11:00:00Z",
        "deleted": deleted,
        **fields,
    }
    return "threads", f"{site}/{post_id}/{root}", value


def window(
    site: str,
    post_id: int,
    start: str,
    version: int,
    deleted: bool = False,
    size: str = "hour",
    **fields,
):
    value = {
        "schema_version": 1,
        "site": site,
        "post_id": post_id,
        "window": size,
        "window_start": start,
        "version": version,
        "comments": version,
        "replies": 0,
        "pingbacks": 0,
        "trackbacks": 0,
        "deleted": deleted,
        **fields,
    }
    return "windows", f"{site}/{post_id}/{size}/{start}", value


def snapshot(engine) -> dict[str, set[tuple]]:
    """Every row of every sink table, without updated_at (a write time, not data)."""
    out = {}
    with engine.connect() as conn:
        for kind, table in TABLES.items():
            cols = [c for c in table.columns if c.name != "updated_at"]
            out[kind] = set(conn.execute(select(*cols)).all())
    return out


def expected_rows(_engine, messages) -> dict[str, set[tuple]]:
    """The rows the newest version per key should leave: written one key at a time, in version
    order, into a fresh copy of the schema (independent of batching and arrival order)."""
    newest: dict[tuple, tuple] = {}
    for m in messages:
        kind, key, value = m
        if (kind, key) not in newest or value["version"] >= newest[(kind, key)][2]["version"]:
            newest[(kind, key)] = m
    out: dict[str, set[tuple]] = {k: set() for k in TABLES}
    utc = UTC
    for (kind, _), (_, _, v) in newest.items():
        if v.get("deleted"):
            continue

        def t(s):
            return (
                None
                if s is None
                else datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(utc)
            )

        if kind == "posts":
            out[kind].add(
                (
                    v["site"],
                    v["post_id"],
                    v["comments"],
                    v["replies"],
                    v["pingbacks"],
                    v["trackbacks"],
                    v["threads"],
                    v["participants"],
                    v["post_author_replies"],
                    v["max_depth"],
                    t(v["first_activity"]),
                    t(v["last_activity"]),
                    float(v["time_to_first_comment_seconds"]),
                    v["waiting_replies"],
                    v["version"],
                )
            )
        elif kind == "threads":
            out[kind].add(
                (
                    v["site"],
                    v["post_id"],
                    v["root_comment_id"],
                    v["replies"],
                    v["depth"],
                    v["participants"],
                    v["post_author_answered"],
                    v["time_to_first_reply_seconds"],
                    t(v["last_activity"]),
                    v["version"],
                )
            )
        else:
            out[kind].add(
                (
                    v["site"],
                    v["post_id"],
                    v["window"],
                    t(v["window_start"]),
                    v["comments"],
                    v["replies"],
                    v["pingbacks"],
                    v["trackbacks"],
                    v["version"],
                )
            )
    return out


def history(rng: random.Random, posts: int = 6) -> list:
    """Every version of a few posts' aggregates, as the engine would emit them over time:
    versions grow per key; some threads and windows are deleted and some come back later."""
    messages = []
    for p in range(1, posts + 1):
        for v in range(1, rng.randint(2, 6) + 1):
            messages.append(post("site-a", p, v, replies=rng.randint(0, 9)))
        for root in range(100, 100 + rng.randint(1, 4)):
            for v in range(1, rng.randint(2, 6) + 1):
                messages.append(thread("site-a", p, root, v, deleted=rng.random() < 0.3))
        for h in range(rng.randint(1, 3)):
            start = f"2012-03-01T{10 + h:02d}:00:00Z"
            for v in range(1, rng.randint(2, 5) + 1):
                messages.append(window("site-a", p, start, v, deleted=rng.random() < 0.3))
    return messages


# ------------------------------------------------------------------ tests
def test_writes_every_kind_with_converted_values(sink_engine):
    result = write_batch(
        sink_engine,
        [
            post("s", 1, 3),
            thread("s", 1, 7, 3),
            window("s", 1, "2012-03-01T10:00:00Z", 3, size="day"),
        ],
    )
    assert result.upserted == {"post_engagement": 1, "thread_engagement": 1, "engagement_window": 1}
    with Session(sink_engine) as s:
        from sinks.models import EngagementWindow, PostEngagement, ThreadEngagement

        p = s.get(PostEngagement, ("s", 1))
        assert (p.comments, p.version, p.time_to_first_comment_seconds) == (3, 3, 60.0)
        assert p.first_activity == datetime(2012, 3, 1, 10, tzinfo=UTC)
        assert p.first_activity.tzinfo is not None and p.updated_at.tzinfo is not None
        t = s.get(ThreadEngagement, ("s", 1, 7))
        assert (t.replies, t.time_to_first_reply_seconds, t.post_author_answered) == (
            3,
            12.5,
            False,
        )
        w = s.get(EngagementWindow, ("s", 1, "day", datetime(2012, 3, 1, 10, tzinfo=UTC)))
        assert w.comments == 3


def test_older_or_repeated_version_never_overwrites(sink_engine):
    write_batch(sink_engine, [post("s", 1, 5, replies=5)])
    write_batch(sink_engine, [post("s", 1, 4, replies=4)])  # older
    write_batch(sink_engine, [post("s", 1, 5, replies=99)])  # same version again
    (row,) = snapshot(sink_engine)["posts"]
    assert (row[3], row[-1]) == (5, 5)  # replies, version
    write_batch(sink_engine, [post("s", 1, 6, replies=6)])
    (row,) = snapshot(sink_engine)["posts"]
    assert (row[3], row[-1]) == (6, 6)


def test_batch_collapses_to_newest_version_per_key(sink_engine):
    msgs = [post("s", 1, 3), post("s", 1, 9), post("s", 1, 2), post("s", 2, 1)]
    batch = collapse(msgs)
    assert len(batch) == 2 and batch.messages == 4
    result = write_batch(sink_engine, msgs)
    assert result.upserted == {"post_engagement": 2}
    assert {r[-1] for r in snapshot(sink_engine)["posts"]} == {9, 1}


def test_replaying_everything_twice_leaves_the_same_rows(sink_engine):
    msgs = history(random.Random(1))
    for i in range(0, len(msgs), 7):
        write_batch(sink_engine, msgs[i : i + 7])
    first = snapshot(sink_engine)
    assert first == expected_rows(sink_engine, msgs)
    for i in range(0, len(msgs), 7):
        write_batch(sink_engine, msgs[i : i + 7])
    assert snapshot(sink_engine) == first


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_shuffled_versions_in_random_batches_end_in_the_newest_rows(sink_engine, seed):
    rng = random.Random(seed)
    msgs = history(rng)
    shuffled = msgs[:]
    rng.shuffle(shuffled)
    i = 0
    while i < len(shuffled):
        n = rng.randint(1, 20)
        write_batch(sink_engine, shuffled[i : i + n])
        i += n
    expected = expected_rows(sink_engine, msgs)
    assert snapshot(sink_engine) == expected
    assert any(expected.values())  # the scenario is not vacuous


def test_delete_is_version_guarded_and_not_undone_by_older_messages(sink_engine):
    start = "2012-03-01T10:00:00Z"
    write_batch(sink_engine, [thread("s", 1, 7, 4), window("s", 1, start, 4)])
    # An older delete leaves the newer row alone.
    write_batch(
        sink_engine, [thread("s", 1, 7, 3, deleted=True), window("s", 1, start, 3, deleted=True)]
    )
    assert len(snapshot(sink_engine)["threads"]) == 1 and len(snapshot(sink_engine)["windows"]) == 1
    # A newer delete removes the row.
    result = write_batch(
        sink_engine, [thread("s", 1, 7, 5, deleted=True), window("s", 1, start, 5, deleted=True)]
    )
    assert result.deleted == {"thread_engagement": 1, "engagement_window": 1}
    assert snapshot(sink_engine)["threads"] == set() and snapshot(sink_engine)["windows"] == set()
    # A late older upsert does not bring it back ...
    result = write_batch(sink_engine, [thread("s", 1, 7, 4), window("s", 1, start, 2)])
    assert result.skipped_tombstoned == 2
    assert snapshot(sink_engine)["threads"] == set() and snapshot(sink_engine)["windows"] == set()
    # ... a newer one does (the root was approved again).
    write_batch(sink_engine, [thread("s", 1, 7, 6)])
    assert {r[-1] for r in snapshot(sink_engine)["threads"]} == {6}


def test_the_tombstone_lookup_is_an_index_search(sink_engine):
    """The recorded deletes only grow (every deleted thread or window ever): a lookup by key alone
    scanned all of them for every batch (~350 ms per batch at 1.6 M rows). Each lookup must go by
    the primary key's leading column, kind, on either database."""
    start = "2012-03-01T10:00:00Z"
    write_batch(
        sink_engine, [thread("s", 1, 7, 5, deleted=True), window("s", 1, start, 5, deleted=True)]
    )
    lookups: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "sink_tombstone" in statement:
            lookups.append((statement, parameters))

    event.listen(sink_engine, "before_cursor_execute", capture)
    try:
        result = write_batch(sink_engine, [thread("s", 1, 7, 4), window("s", 1, start, 2)])
    finally:
        event.remove(sink_engine, "before_cursor_execute", capture)
    assert result.skipped_tombstoned == 2 and lookups
    with sink_engine.connect() as conn:
        for statement, parameters in lookups:
            if sink_engine.dialect.name == "sqlite":
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plan = " ".join(str(row[-1]) for row in rows)
                assert re.search(r"SEARCH .*\(kind=\?", plan), plan
            else:  # tiny tables: make the planner show what it would do with a big one
                conn.exec_driver_sql("SET enable_seqscan = off")
                rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                plan = "\n".join(row[0] for row in rows)
                assert re.search(r"Index Cond: .*\bkind\b", plan), plan


def test_delete_of_a_row_never_written_is_harmless(sink_engine):
    result = write_batch(sink_engine, [thread("s", 1, 7, 2, deleted=True)])
    assert result.deleted == {"thread_engagement": 1}
    assert snapshot(sink_engine)["threads"] == set()


def test_mixed_kinds_sites_and_topic_names_in_one_batch(sink_engine):
    msgs = [
        post("a", 1, 1),
        post("b", 1, 1),
        thread("a", 1, 5, 1),
        thread("b", 1, 5, 2),
        window("a", 1, "2012-03-01T10:00:00Z", 1),
        window("a", 1, "2012-03-01T00:00:00Z", 1, size="day"),
        ("engagement.posts", "a/2", post("a", 2, 7)[2]),
    ]
    result = write_batch(sink_engine, msgs)
    assert result.upserted == {"post_engagement": 3, "thread_engagement": 2, "engagement_window": 2}
    assert snapshot(sink_engine) == expected_rows(
        sink_engine, [m if m[0] != "engagement.posts" else ("posts",) + m[1:] for m in msgs]
    )


def test_empty_batch_writes_nothing(sink_engine):
    result = write_batch(sink_engine, [])
    assert result.rows == 0 and result.upserted == {} and result.deleted == {}
    assert snapshot(sink_engine) == {k: set() for k in TABLES}


def test_time_variants_of_one_window_are_one_key(sink_engine):
    write_batch(sink_engine, [window("s", 1, "2012-03-01T10:00:00Z", 1)])
    write_batch(sink_engine, [window("s", 1, "2012-03-01T10:00:00+00:00", 2)])
    assert {r[-1] for r in snapshot(sink_engine)["windows"]} == {2}


@pytest.mark.parametrize(
    "message, field",
    [
        (post("s", 1, 1, comments="3"), "comments"),
        (post("s", 1, 1, first_activity="yesterday"), "first_activity"),
        (post("s", 1, -1), "version"),
        (post("s", 0, 1), "post_id"),
        (thread("s", 1, 7, 1, deleted="yes"), "deleted"),
        (window("s", 1, "2012-03-01T10:00:00Z", 1, size="week"), "window"),
        (window("s", 1, "2012-03-01T10:00:00", 1), "window_start"),
        (("threads", "s/1/2", {"site": "s", "post_id": 1, "version": 1}), "root_comment_id"),
        (("likes", "s/1", {"version": 1}), "kind"),
    ],
)
def test_invalid_message_names_the_field_and_writes_nothing(sink_engine, message, field):
    with pytest.raises(InvalidAggregate) as err:
        write_batch(sink_engine, [post("s", 9, 1), message])
    assert err.value.field == field and field in str(err.value)
    assert snapshot(sink_engine) == {k: set() for k in TABLES}
    skipped = []
    batch = collapse([post("s", 9, 1), message], on_invalid=lambda m, e: skipped.append(e.field))
    assert skipped == [field] and len(batch) == 1


def test_delete_needs_only_the_key(sink_engine):
    write_batch(sink_engine, [thread("s", 1, 7, 1)])
    write_batch(
        sink_engine,
        [
            (
                "threads",
                "s/1/7",
                {"site": "s", "post_id": 1, "root_comment_id": 7, "version": 2, "deleted": True},
            )
        ],
    )
    assert snapshot(sink_engine)["threads"] == set()


def test_session_target_runs_in_the_callers_transaction(sink_engine):
    with Session(sink_engine) as s:
        write_batch(s, [post("s", 1, 1)])
        s.rollback()
    assert snapshot(sink_engine)["posts"] == set()
    with Session(sink_engine) as s:
        write_batch(s, [post("s", 1, 1)])
        s.commit()
    assert len(snapshot(sink_engine)["posts"]) == 1
