"""schemas.wire: the per-message decode/encode of input events, and the Records of schemas.events.
Property tests: any valid event survives model -> JSON -> model; decode_event never raises anything
but InvalidEvent, on any bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Comment, ModerationChange, Pingback, Reply, event_from_wire
from schemas.identity import event_id
from schemas.wire import InvalidEvent, decode_event, encode_event, make_event

KEY = "ab" * 32


def good(**over):
    fields = dict(
        type="comment",
        site="blog.example.org",
        post_id=7,
        comment_id=3,
        author_key=KEY,
        event_time="2012-03-01T10:00:00Z",
        post_time="2012-03-01T09:00:00Z",
    )
    fields.update(over)
    return make_event(**fields)


def raw(obj) -> bytes:
    return orjson.dumps(obj)


def test_valid_event_decodes_to_the_same_dict():
    event = good()
    assert decode_event(encode_event(event)) == event


def test_wire_json_is_the_contract_and_has_no_faust_metadata():
    record = Reply(
        site="s",
        post_id=1,
        comment_id=5,
        parent_id=4,
        author_key=KEY,
        event_time=datetime(2012, 3, 1, 10, tzinfo=UTC),
    )
    obj = orjson.loads(encode_event(record))
    assert list(obj) == [
        "schema_version",
        "event_id",
        "type",
        "site",
        "post_id",
        "comment_id",
        "parent_id",
        "post_author",
        "author_key",
        "kind",
        "source_url",
        "event_time",
        "post_time",
        "status",
    ]
    assert obj["type"] == "reply" and obj["event_time"] == "2012-03-01T10:00:00Z"
    assert obj["event_id"] == event_id("s", 1, 5, "reply", "approved", "2012-03-01T10:00:00Z")
    assert "__faust" not in encode_event(record).decode()


def _rebuilt(event):
    """The event with event_id derived again (after a test changed a field on purpose)."""
    return {
        **event,
        "event_id": event_id(
            event["site"],
            event["post_id"],
            event["comment_id"],
            event["type"],
            event["status"],
            event["event_time"],
        ),
    }


FUTURE = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "data, field",
    [
        (b"\xff\xfe{", "utf8"),
        (b'{"type": "comment",', "json"),
        (b"[1, 2]", "schema"),
        (b'"comment"', "schema"),
        (raw(_rebuilt({**good(), "type": "like"})), "type"),
        (raw({k: v for k, v in good().items() if k != "post_id"}), "post_id"),
        (raw(_rebuilt({**good(), "post_id": "7"})), "post_id"),
        (raw(_rebuilt({**good(), "post_id": 0})), "post_id"),
        (raw(_rebuilt({**good(), "comment_id": -3})), "comment_id"),
        (raw(_rebuilt({**good(), "comment_id": True})), "comment_id"),
        (raw(_rebuilt({**good(), "status": "approve"})), "status"),
        (raw(_rebuilt({**good(), "site": "blog/example"})), "site"),
        (raw(_rebuilt({**good(), "site": ""})), "site"),
        (raw(_rebuilt({**good(), "event_time": "2012-03-01 10:00:00"})), "event_time"),
        (raw(_rebuilt({**good(), "event_time": "2012-03-01T10:00:00+01:00"})), "event_time"),
        (raw(_rebuilt({**good(), "event_time": "2012-02-30T10:00:00Z"})), "event_time"),
        (raw(_rebuilt({**good(), "event_time": "1994-12-31T23:59:59Z"})), "event_time"),
        (raw(_rebuilt({**good(), "event_time": FUTURE})), "event_time"),
        (raw(_rebuilt({**good(), "post_time": "yesterday"})), "post_time"),
        (raw(good(type="reply", parent_id=3, comment_id=3)), "parent_id"),
        (raw(good(type="reply", parent_id=0)), "parent_id"),
        (raw(good(parent_id=2)), "parent_id"),
        (raw({**good(), "event_id": "0" * 32}), "event_id"),
        (raw({**good(), "event_id": "xyz"}), "event_id"),
        (raw(good(author_key="AB" * 32)), "author_key"),
        (raw(good(author_key="ab" * 31)), "author_key"),
        (raw(good(author_key="")), "author_key"),
        (raw({**good(), "schema_version": 2}), "schema_version"),
        (raw({**good(), "extra": 1}), "schema"),
        (raw(good(type="pingback", kind="comment")), "kind"),
        (raw(good(post_author="yes")), "post_author"),
        (b'{"pad": "' + b"x" * 70000 + b'"}', "schema"),
        (b"", "json"),
    ],
)
def test_invalid_events_name_the_field(data, field):
    with pytest.raises(InvalidEvent) as info:
        decode_event(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


def test_moderation_may_have_empty_author_key():
    event = good(type="moderation", author_key="", status="spam")
    assert decode_event(encode_event(event))["status"] == "spam"


# ---------------------------------------------------------------------------- strategies
_SITE = st.text(
    st.characters(categories=("L", "N", "P", "S"), exclude_characters="/"), min_size=1, max_size=30
)
_IDS = st.integers(1, 2**63 - 1)
_TIMES = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2025, 1, 1), timezones=st.just(UTC)
)
_HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
_STATUS = st.sampled_from(["approved", "hold", "spam", "trash", "delete"])


@st.composite
def records(draw):
    cls = draw(st.sampled_from([Comment, Reply, Pingback, ModerationChange]))
    comment_id = draw(_IDS)
    fields = dict(
        site=draw(_SITE),
        post_id=draw(_IDS),
        comment_id=comment_id,
        event_time=draw(_TIMES),
        status=draw(_STATUS),
        post_author=draw(st.booleans()),
        post_time=draw(st.none() | _TIMES),
    )
    if cls is Reply:
        fields["parent_id"] = draw(_IDS.filter(lambda p: p != comment_id))
    if cls is not ModerationChange:
        fields["author_key"] = draw(_HEX64)
    else:
        fields["author_key"] = draw(st.just("") | _HEX64)
        fields["kind"] = draw(st.sampled_from(["comment", "pingback", "trackback"]))
    if cls is Pingback:
        fields["kind"] = draw(st.sampled_from(["pingback", "trackback"]))
        fields["source_url"] = draw(st.none() | st.text(max_size=80))
    return cls(**fields)


@settings(max_examples=150, deadline=None)
@given(records())
def test_model_json_model_round_trip(record):
    data = encode_event(record)
    back = event_from_wire(decode_event(data))
    assert back == record
    assert type(back) is type(record)
    assert back.event_time.tzinfo is not None and back.event_time.utcoffset() == timedelta(0)
    assert encode_event(back) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_raises_anything_else_on_bytes(data):
    try:
        decode_event(data)
    except InvalidEvent:
        pass


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(records(), st.sampled_from(list(good())), _JSON_VALUES)
def test_decode_never_raises_anything_else_on_mutated_events(record, field, value):
    obj = {**record.to_wire(), field: value}
    try:
        decode_event(orjson.dumps(obj))
    except InvalidEvent:
        pass
