"""Fuzz the event decoder: any bytes -> a validated dict or InvalidEvent, never another exception.

Inputs are random bytes, random JSON values, and valid events with one field mutated, so the fuzzer
reaches the validator's field checks and not only the JSON parser."""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.wire import InvalidEvent, decode_event, make_event

FUZZ = settings(max_examples=200, deadline=500, suppress_health_check=[HealthCheck.too_slow])

VALID = make_event(
    type="reply",
    site="fuzz.example",
    post_id=3,
    comment_id=9,
    parent_id=4,
    author_key="a" * 64,
    event_time="2020-01-02T03:04:05Z",
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _dumps(value) -> bytes:
    # stdlib json, not orjson: it also writes integers beyond 64 bits, which the decoder must reject.
    return json.dumps(value).encode()


def _decodes_or_rejects(raw: bytes) -> None:
    try:
        event = decode_event(raw)
    except InvalidEvent as exc:
        assert exc.args, "InvalidEvent must say which field and why"
        return
    assert isinstance(event, dict) and event["type"] in (
        "comment",
        "reply",
        "pingback",
        "moderation",
    )


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes(raw):
    _decodes_or_rejects(raw)


@FUZZ
@given(json_values)
def test_any_json_value(value):
    _decodes_or_rejects(_dumps(value))


@FUZZ
@given(st.sampled_from(sorted(VALID)), json_values)
def test_valid_event_with_one_field_replaced(field, value):
    _decodes_or_rejects(_dumps({**VALID, field: value}))


@FUZZ
@given(st.sampled_from(sorted(VALID)))
def test_valid_event_with_one_field_missing(field):
    broken = {k: v for k, v in VALID.items() if k != field}
    _decodes_or_rejects(_dumps(broken))


@FUZZ
@given(st.data())
def test_valid_event_bytes_mutated(data):
    raw = bytearray(orjson.dumps(VALID))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    _decodes_or_rejects(bytes(raw))


def test_the_unmutated_event_decodes():
    # The mutation fuzzers start from a valid event; if it were invalid they would test nothing.
    assert decode_event(orjson.dumps(VALID))["comment_id"] == 9
