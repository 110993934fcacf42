"""WordPress rows and webhook deliveries -> contract events, and the poller's state file."""

from __future__ import annotations

from datetime import UTC

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.identity import AuthorKeyer
from schemas.wire import InvalidEvent, validate
from streams.ingest.http import parse_events, sign, signature_ok
from streams.ingest.poller import PollState, _after_param
from streams.ingest.webhook import classify, parse_body, read_webhook
from streams.ingest.wordpress import row_from_rest, wp_status, wp_time

KEYER = AuthorKeyer(b"unit-secret")


def row(**kw):
    base = {
        "comment_ID": "9",
        "comment_post_ID": "375",
        "comment_author": "Ann",
        "comment_author_email": "Ann@Example.org ",
        "comment_author_url": "",
        "comment_date_gmt": "2019-08-14 14:08:53",
        "comment_approved": "1",
        "comment_type": "",
        "comment_parent": "0",
        "user_id": "0",
    }
    return {**base, **kw}


def test_statuses_and_times_as_wordpress_writes_them():
    assert [wp_status(v, "s") for v in ("1", 1, "0", "spam", "trash", "post-trashed", "hold")] == [
        "approved",
        "approved",
        "hold",
        "spam",
        "trash",
        "trash",
        "hold",
    ]
    with pytest.raises(InvalidEvent, match="comment_approved"):
        wp_status("maybe", "comment_approved")
    assert wp_time("2019-08-14 14:08:53", "t") == "2019-08-14T14:08:53Z"
    assert wp_time("2019-08-14T14:08:53", "t") == "2019-08-14T14:08:53Z"
    with pytest.raises(InvalidEvent, match="comment_date_gmt"):
        wp_time("0000-00-00 00:00:00", "comment_date_gmt")


def test_create_is_one_creation_event_keyed_without_the_email():
    result = read_webhook(
        {"comment_data": row(user_id="4"), "current_post_data": {"post_author": "4"}},
        site="blog",
        action="create_comment",
        keyer=KEYER,
    )
    [event] = result.events
    assert event["type"] == "comment" and event["post_author"] is True
    assert event["author_key"] == KEYER.key(email="ann@example.org")
    assert b"Example.org" not in orjson.dumps(event)
    assert validate(event) == event


def test_reply_pingback_trackback_and_ignored_types():
    reply = read_webhook(
        row(comment_parent="3"), site="b", action="comment_post", keyer=KEYER
    ).events[0]
    assert (reply["type"], reply["parent_id"]) == ("reply", 3)
    ping = read_webhook(
        row(comment_type="trackback", comment_author_url="https://x.example/p"),
        site="b",
        action="comment_post",
        keyer=KEYER,
    ).events[0]
    assert (ping["type"], ping["kind"], ping["source_url"]) == (
        "pingback",
        "trackback",
        "https://x.example/p",
    )
    ignored = read_webhook(
        row(comment_type="order_note"), site="b", action="comment_post", keyer=KEYER
    )
    assert ignored.events == [] and "order_note" in ignored.ignored


@pytest.mark.parametrize(
    "action,row_status,expected",
    [
        ("trash_comment", "1", "trash"),
        ("delete_comment", "1", "delete"),
        ("spam_comment", "0", "spam"),
        ("wp_set_comment_status", "0", "hold"),
        ("comment_unapproved_to_approved", "0", "approved"),
        (None, "spam", "spam"),
        ("edit_comment", "1", "approved"),
    ],
)
def test_changes_add_a_moderation_event_at_the_change_time(action, row_status, expected):
    result = read_webhook(
        row(comment_approved=row_status),
        site="b",
        action=action,
        keyer=KEYER,
        received_at="2020-01-01T00:00:00Z",
    )
    creation, moderation = result.events
    assert creation["event_time"] == "2019-08-14T14:08:53Z"
    assert (moderation["type"], moderation["status"], moderation["event_time"]) == (
        "moderation",
        expected,
        "2020-01-01T00:00:00Z",
    )


def test_bad_deliveries_name_the_field():
    with pytest.raises(InvalidEvent) as err:
        read_webhook({"comment_data": {"comment_ID": "1"}}, site="b", action=None, keyer=KEYER)
    assert err.value.field == "comment_post_ID"
    with pytest.raises(InvalidEvent) as err:
        read_webhook(row(), site="b", action="explode", keyer=KEYER)
    assert err.value.field == "action"
    with pytest.raises(InvalidEvent) as err:
        read_webhook(row(comment_post_ID="abc"), site="b", action=None, keyer=KEYER)
    assert err.value.field == "comment_post_ID"
    with pytest.raises(InvalidEvent) as err:
        read_webhook(row(), site="a/b", action=None, keyer=KEYER)
    assert err.value.field == "site"
    assert classify("comment_post") == ("create", None)


def test_form_encoded_php_style_body():
    body = parse_body(
        b"hook=comment_post&comment_data%5Bcomment_ID%5D=9&comment_data%5Bcomment_post_ID%5D=2",
        "application/x-www-form-urlencoded",
    )
    assert body == {
        "hook": "comment_post",
        "comment_data": {"comment_ID": "9", "comment_post_ID": "2"},
    }


def test_rest_comment_object():
    r = row_from_rest(
        {
            "id": 5,
            "post": 2,
            "parent": 0,
            "author": 0,
            "author_name": "Bo",
            "author_email": "",
            "author_url": "https://bo.example/",
            "date_gmt": "2012-03-01T10:00:00",
            "status": "hold",
            "type": "comment",
        },
        KEYER,
    )
    assert (r.comment_id, r.post_id, r.status, r.created) == (5, 2, "hold", "2012-03-01T10:00:00Z")
    assert r.author_key == KEYER.key(name="Bo", url="bo.example")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.binary(min_size=1, max_size=32))
def test_signature_accepts_exactly_the_signed_body(body, secret):
    header = sign(secret, body)
    assert signature_ok(secret, body, header)
    assert not signature_ok(secret, body + b"x", header)
    assert not signature_ok(secret + b"x", body, header)
    assert not signature_ok(secret, body, None) and not signature_ok(secret, body, "sha256=ü")


def test_own_events_all_or_nothing_with_the_index():
    from schemas.wire import make_event

    good = make_event(
        type="comment",
        site="s",
        post_id=1,
        comment_id=1,
        author_key="a" * 64,
        event_time="2012-03-01T10:00:00Z",
    )
    assert parse_events(orjson.dumps(good)) == [good]
    assert parse_events(orjson.dumps(good) + b"\n\n" + orjson.dumps(good)) == [good, good]
    with pytest.raises(InvalidEvent) as err:
        parse_events(orjson.dumps([good, {**good, "post_id": 0}]))
    assert err.value.field == "events[1].post_id"
    with pytest.raises(InvalidEvent) as err:
        parse_events(b"{nope")
    assert err.value.field == "body"


def test_state_file_round_trip_and_atomic_replace(tmp_path):
    path = tmp_path / "state.json"
    state = PollState(
        base_url="https://b",
        site="b",
        position="2012-03-01T10:00:00Z",
        comments={"1": [2, "approved", 0, "", "2012-03-01T10:00:00Z", "k"]},
    )
    state.save(path)
    state.pending = [{"x": 1}]
    state.save(path)
    loaded = PollState.load(path)
    assert loaded.comments == state.comments and loaded.pending == [{"x": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp files left


def test_after_covers_position_and_lookback():
    from datetime import datetime

    now = datetime(2020, 1, 31, tzinfo=UTC)
    assert _after_param(None, 14, now) == "2020-01-16T00:00:00"
    assert _after_param("2012-03-01T10:00:00Z", 14, now) == "2012-02-29T10:00:00"


def test_poll_config_file_and_flags(tmp_path, monkeypatch):
    import argparse

    from streams.ingest import commands

    cfg = tmp_path / "poller.toml"
    cfg.write_text(
        '[wordpress]\nbase_url = "https://blog.example.org"\nsite = "blog"\nuser = "editor"\n'
        'state_file = "/tmp/x.json"\ninterval = 30\n'
    )
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    monkeypatch.setenv("BLOGPULSE_WP_APP_PASSWORD", "abcd efgh")
    from streams.settings import Settings

    config = commands._poll_config(
        parser.parse_args(["poll", "--config", str(cfg), "--interval", "5"]), Settings()
    )
    assert (config.base_url, config.site, config.user, config.password, config.interval) == (
        "https://blog.example.org",
        "blog",
        "editor",
        "abcd efgh",
        5.0,
    )
    monkeypatch.delenv("BLOGPULSE_WP_APP_PASSWORD")
    with pytest.raises(ValueError, match="application password"):
        commands._poll_config(parser.parse_args(["poll", "--config", str(cfg)]), Settings())
