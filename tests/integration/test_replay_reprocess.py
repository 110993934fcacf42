"""Replay and reprocessing against a real broker of our own (the own_broker fixture: the shared
broker holds millions of benchmark events a new consumer group would have to read) and real
workers.

- the same history fed live (shuffled within posts, with duplicates) and then rebuilt by
  `blogpulse reprocess start` gives identical rows (all aggregate columns; version and updated_at
  differ by design, docs/replay.md);
- `blogpulse replay` of a WXR export with 10-level threads and pings gives per-post and per-thread
  numbers equal to a count made directly from the XML."""

from __future__ import annotations

import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from sqlalchemy import text

from sinks import db, generations
from tests.conftest import REPO
from tests.fixtures.replay_wxr import generate, independent_count
from tests.integration.live_history import (
    SECRET,
    caught_up,
    caught_up_worker,
    published_history,
    rows,
)
from tests.integration.worker_proc import CLI, running_worker, wait_until, worker_env


def test_live_and_reprocessed_rows_are_identical(own_broker, tmp_path, monkeypatch):
    monkeypatch.setenv("BLOGPULSE_AUTHOR_SECRET", SECRET)
    site, _ = published_history(own_broker, tmp_path, "live", posts=6, seed=21, feed_seed=4)

    db_url = f"sqlite:///{tmp_path / 'sink.db'}"
    app_id = f"replay-{uuid.uuid4().hex[:8]}"
    with caught_up_worker(own_broker, app_id, db_url, tmp_path / "live.log") as (live, env):
        done = subprocess.run(
            [*CLI, "reprocess", "start", "--timeout", "240", "--log", str(tmp_path / "g2.log")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (
            done.stdout + done.stderr + (tmp_path / "g2.log").read_text()[-3000:]
        )
        assert "generation 2 has caught up" in done.stdout
        live.check_alive()  # the live generation kept running throughout

        engine = db.make_engine(db_url)
        live_rows, rebuilt = rows(engine, 1, site), rows(engine, 2, site)
        assert live_rows["posts"] and live_rows["threads"] and live_rows["windows"]
        assert rebuilt == live_rows

        switched = subprocess.run(
            [*CLI, "reprocess", "switch", "2"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert switched.returncode == 0, switched.stderr
        with engine.connect() as conn:
            current = set(
                conn.execute(
                    text(
                        "SELECT site, post_id, comments, replies, threads FROM post_engagement_current "
                        "WHERE site = :s"
                    ),
                    {"s": site},
                ).all()
            )
            assert generations.active(conn) == 2
        assert current == {r[:4] + (r[6],) for r in rebuilt["posts"]}
        engine.dispose()


def test_replayed_wxr_matches_an_independent_count(own_broker, tmp_path):
    site = f"deep-{uuid.uuid4().hex[:6]}.example.org"
    wxr = tmp_path / "deep.xml"
    wxr.write_text(generate(site, posts=4, seed=3))
    want_posts, want_threads = independent_count(wxr.read_text())
    assert min(p["max_depth"] for p in want_posts.values()) >= 10

    env = worker_env(own_broker, "unused", 0, "sqlite://", BLOGPULSE_AUTHOR_SECRET=SECRET)
    done = subprocess.run(
        [*CLI, "replay", str(wxr), "--site", site],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "replay: " in done.stderr and "(100%)" in done.stderr
    total = sum(1 for _ in wxr_entries(wxr))
    assert done.stdout.startswith(f"replayed {total} events")

    db_url = f"sqlite:///{tmp_path / 'sink.db'}"
    app_id = f"replay-{uuid.uuid4().hex[:8]}"
    with running_worker(
        own_broker, app_id, db_url, tmp_path / "w.log", BLOGPULSE_AUTHOR_SECRET=SECRET
    ) as worker:
        wait_until(lambda: caught_up(own_broker, app_id), 180, "worker caught up", worker)
    engine = db.make_engine(db_url)
    got = rows(engine, 1, site)
    engine.dispose()
    cols = (
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
    )
    got_posts = {}
    for r in got["posts"]:
        v = dict(zip(cols, r))
        got_posts[v["post_id"]] = {k: v[k] for k in want_posts[v["post_id"]]}
    assert got_posts == want_posts
    got_threads = {
        (r[1], r[2]): {"replies": r[3], "depth": r[4], "participants": r[5]} for r in got["threads"]
    }
    assert got_threads == want_threads


def wxr_entries(path: Path):
    return ET.parse(path).getroot().iter("{http://wordpress.org/export/1.2/}comment")
