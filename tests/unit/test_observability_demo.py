"""streams.demo pieces that need no services: reading progress from /metrics text, the caught-up
rule, argument parsing and the clear errors for bad input."""

from __future__ import annotations

import argparse

import pytest

from schemas.topic_names import BASE_OUTPUT_TOPICS, INPUT_TOPICS
from streams import demo
from streams.settings import Settings

ALL_TOPICS = [*INPUT_TOPICS.values(), *BASE_OUTPUT_TOPICS.values()]


def exposition(consumed: dict, rows: dict, lags: dict) -> str:
    lines = [
        "# HELP blogpulse_events_consumed_total x",
        "# TYPE blogpulse_events_consumed_total counter",
    ]
    lines += [
        f'blogpulse_events_consumed_total{{type="{t}",outcome="{o}"}} {v}'
        for (t, o), v in consumed.items()
    ]
    lines += [
        "# HELP blogpulse_sink_rows_written_total x",
        "# TYPE blogpulse_sink_rows_written_total counter",
    ]
    lines += [f'blogpulse_sink_rows_written_total{{table="{t}"}} {v}' for t, v in rows.items()]
    lines += ["# HELP blogpulse_consumer_lag x", "# TYPE blogpulse_consumer_lag gauge"]
    lines += [
        f'blogpulse_consumer_lag{{topic="{t}",partition="{p}"}} {v}' for (t, p), v in lags.items()
    ]
    return "\n".join(lines) + "\n"


def test_parse_progress_sums_the_counters_and_lag():
    text = exposition(
        {("comment", "applied"): 10, ("reply", "applied"): 2, ("invalid", "dead_letter"): 1},
        {"post_engagement": 1, "thread_engagement": 10},
        {("blog.comments", 0): 3, ("engagement.posts", 1): 2},
    )
    p = demo.parse_progress(text)
    assert p.consumed == 13 and p.rows == 11 and p.lag == 5
    assert p.lag_topics == {"blog.comments", "engagement.posts"}


def test_parse_progress_without_lag_series_says_unknown():
    p = demo.parse_progress(exposition({}, {}, {}))
    assert p.lag is None and p.consumed == 0


def test_caught_up_needs_everything_consumed_no_lag_and_every_topic_seen():
    lags = {(t, 0): 0 for t in ALL_TOPICS}
    done = demo.parse_progress(exposition({("comment", "applied"): 16}, {}, lags))
    assert demo.caught_up(done, 16, BASE_OUTPUT_TOPICS.values())
    assert not demo.caught_up(done, 17, BASE_OUTPUT_TOPICS.values())  # not all consumed yet
    behind = demo.parse_progress(
        exposition({("comment", "applied"): 16}, {}, {**lags, ("engagement.threads", 0): 1})
    )
    assert not demo.caught_up(
        behind, 16, BASE_OUTPUT_TOPICS.values()
    )  # the sink has not committed everything
    partial = demo.parse_progress(
        exposition({("comment", "applied"): 16}, {}, {("blog.comments", 0): 0})
    )
    assert not demo.caught_up(
        partial, 16, BASE_OUTPUT_TOPICS.values()
    )  # sink partitions not assigned yet: unknown


def test_remote_broker_that_does_not_answer_is_a_clear_error():
    # 127.0.0.2 is loopback (nothing answers on port 1) but not the local broker the demo may start
    settings = Settings(broker="127.0.0.2:1")
    with pytest.raises(demo.DemoError, match="BLOGPULSE_BROKER"):
        demo.ensure_broker(settings, lambda msg: None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blogpulse")
    demo.register_demo(parser.add_subparsers(dest="command"))
    return parser


def test_arguments():
    args = _parser().parse_args(["demo", "export.xml", "--keep-running"])
    assert str(args.file) == "export.xml" and args.keep_running and args.func is demo.run_demo
    assert _parser().parse_args(["demo"]).file is None


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    args = _parser().parse_args(["demo", str(tmp_path / "nope.xml")])
    assert demo.run_demo(args, Settings()) == 2
    assert "does not exist" in capsys.readouterr().err


def test_default_file_is_the_shipped_sample():
    assert demo.SAMPLE.name == "sample-export.xml"
    assert demo.SAMPLE.parent.name == "sample"
