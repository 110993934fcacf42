"""Generations of the sink tables (sinks/generations.py) on SQLite: a rebuild writes its own tables,
readers (the *_current views, `blogpulse stats`) follow the active generation, switch is atomic,
cleanup drops only an inactive generation and numbers are never reused."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from sinks import db, generations
from sinks.upsert import write_batch
from streams.cli import main
from tests.unit.test_sink_upsert import post, thread, window


@pytest.fixture
def engine(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'gen.db'}"
    monkeypatch.setenv("BLOGPULSE_DB", url)
    e = db.make_engine(url)
    db.upgrade(e)
    yield e
    e.dispose()


def current_posts(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT site, post_id, comments FROM post_engagement_current ORDER BY site, post_id"
            )
        ).all()


def fill(engine, generation: int, comments: int) -> None:
    write_batch(
        engine,
        [post("s", 1, comments), thread("s", 1, 7, 2), window("s", 1, "2012-03-01T10:00:00Z", 2)],
        generation=generation,
    )


def test_new_generation_is_written_apart_and_readers_switch_atomically(engine, capsys):
    fill(engine, 1, comments=3)
    assert generations.next_generation(engine) == 2
    generations.create(engine, 2, "blogpulse-g2", None)
    fill(engine, 2, comments=5)  # version 5 here: gen 2 has its own version counters and rows
    assert current_posts(engine) == [("s", 1, 3)]  # readers still on generation 1
    assert generations.row_counts(engine, 2) == {"posts": 1, "threads": 1, "windows": 1}

    assert main(["reprocess", "switch", "2"]) == 0
    assert current_posts(engine) == [("s", 1, 5)]
    assert main(["stats", "--json"]) == 0
    out = capsys.readouterr().out
    assert orjson.loads(out[out.index("{") :])["top_posts"][0]["comments"] == 5
    with engine.connect() as conn:  # the views point at the new tables, both of them
        assert conn.execute(text("SELECT count(*) FROM thread_engagement_current")).scalar() == 1
        assert generations.active(conn) == 2


def test_cleanup_of_active_is_refused(engine, capsys):
    assert main(["reprocess", "cleanup", "1"]) == 1
    assert "is active" in capsys.readouterr().err


def test_switch_then_cleanup_old_generation(engine, capsys):
    fill(engine, 1, comments=3)
    generations.create(engine, 2, "blogpulse-g2", None)
    fill(engine, 2, comments=5)
    generations.switch(engine, 2)
    assert main(["reprocess", "cleanup", "1"]) == 0
    assert generations.row_counts(engine, 1) == {"posts": 0, "threads": 0, "windows": 0}
    generations.create(engine, 3, "blogpulse-g3", None)
    generations.switch(engine, 3)
    assert main(["reprocess", "cleanup", "2"]) == 0
    assert generations.row_counts(engine, 2) == {"posts": None, "threads": None, "windows": None}
    assert generations.next_generation(engine) == 4  # 2 was dropped, its number stays taken
    assert main(["reprocess", "switch", "2"]) == 1
    assert "cleaned up" in capsys.readouterr().err
    assert main(["reprocess", "status"]) == 0
    out = capsys.readouterr().out
    assert "active generation: 3" in out and "2: app id blogpulse-g2, cleaned up" in out


def test_switch_to_unknown_generation_fails_cleanly(engine, capsys):
    assert main(["reprocess", "switch", "9"]) == 1
    err = capsys.readouterr().err
    assert "generation 9 does not exist" in err and "Traceback" not in err
    with engine.connect() as conn:
        assert generations.active(conn) == 1


def test_a_failed_switch_leaves_everything_as_it_was(engine, monkeypatch):
    fill(engine, 1, comments=3)
    generations.create(engine, 2, "blogpulse-g2", None)
    fill(engine, 2, comments=5)

    def broken(conn, generation):  # the views cannot be repointed: the UPDATE must roll back
        conn.execute(text("DROP VIEW post_engagement_current"))
        raise RuntimeError("boom")

    monkeypatch.setattr(generations, "_point_views", broken)
    with pytest.raises(RuntimeError):
        generations.switch(engine, 2)
    with engine.connect() as conn:
        assert generations.active(conn) == 1
    assert current_posts(engine) == [("s", 1, 3)]  # the DROP VIEW was rolled back too


def test_commands_on_an_unmigrated_database_say_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BLOGPULSE_DB", f"sqlite:///{tmp_path / 'empty.db'}")
    for argv in (
        ["reprocess", "status"],
        ["reprocess", "switch", "2"],
        ["reprocess", "cleanup", "2"],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "blogpulse db upgrade" in err and "Traceback" not in err and "SELECT" not in err


def test_start_refuses_to_run_inside_a_generation(monkeypatch, capsys):
    monkeypatch.setenv("BLOGPULSE_GENERATION", "2")
    assert main(["reprocess", "start"]) == 2
    assert "unset BLOGPULSE_GENERATION" in capsys.readouterr().err
