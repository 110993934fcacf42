"""The shipped JSON Schema files: equal to the generator's output, and they accept exactly what
decode_event accepts on generated events, valid and mutated (within what JSON Schema can express:
see schemas/jsonschema_gen.py; the event_id is derived again after a mutation so its check,
which JSON Schema cannot do, does not decide)."""

from __future__ import annotations

import json

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas import jsonschema_gen
from schemas.aggregates import OUTPUTS
from schemas.identity import event_id
from schemas.wire import FIELDS, InvalidEvent, decode_event
from tests.unit.test_schemas_wire import records

SCHEMA_DIR = jsonschema_gen.OUT_DIR
EVENT_VALIDATORS = [
    Draft202012Validator(json.loads((SCHEMA_DIR / f"event.{t}.json").read_text()))
    for t in ("comment", "reply", "pingback", "moderation")
]


def test_shipped_files_equal_generator_output():
    wanted = jsonschema_gen.all_schemas()
    shipped = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert shipped == set(wanted), "run: python -m schemas.jsonschema_gen"
    for name, schema in wanted.items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == jsonschema_gen.render(schema), (
            name
        )


def test_schemas_are_valid_draft_2020_12():
    for path in SCHEMA_DIR.glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def _schema_accepts(obj) -> bool:
    return any(v.is_valid(obj) for v in EVENT_VALIDATORS)


def _decode_accepts(obj) -> bool:
    try:
        decode_event(orjson.dumps(obj))
        return True
    except InvalidEvent:
        return False


_ODD_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1,
        2,
        2**63 - 1,
        2**63,
        1.5,
        "",
        "x",
        "a/b",
        "1",
        "ab" * 32,
        "AB" * 32,
        "ab" * 31,
        "0" * 32,
        [],
        {},
        "2012-03-01T10:00:00Z",
        "2012-03-01T10:00:00.5Z",
        "2012-03-01 10:00:00",
        "2012-03-01T10:00:00+00:00",
        "2012-03-01T10:00:00Z\n",
        "approved",
        "hold",
        "delete",
        "approve",
        "comment",
        "reply",
        "pingback",
        "trackback",
        "moderation",
        "like",
    ]
)


@st.composite
def mutated(draw):
    obj = draw(records()).to_wire()
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "drop", "add"]))
        if action == "set":
            obj[draw(st.sampled_from(FIELDS))] = draw(_ODD_VALUES)
        elif action == "drop":
            obj.pop(draw(st.sampled_from(FIELDS)), None)
        else:
            obj[draw(st.sampled_from(["extra", "Type", "comment"]))] = 1
    if draw(st.booleans()) and all(
        k in obj for k in ("site", "post_id", "comment_id", "type", "status", "event_time")
    ):
        obj["event_id"] = event_id(
            obj["site"],
            obj["post_id"],
            obj["comment_id"],
            obj["type"],
            obj["status"],
            obj["event_time"],
        )
    return obj


def _event_id_decides(obj) -> bool:
    """True when only the event_id derivation could tell the two apart."""
    try:
        return obj["event_id"] != event_id(
            obj["site"],
            obj["post_id"],
            obj["comment_id"],
            obj["type"],
            obj["status"],
            obj["event_time"],
        )
    except (KeyError, TypeError):
        return True


@settings(max_examples=200, deadline=None)
@given(mutated())
def test_schema_accepts_exactly_what_decode_accepts(obj):
    schema_ok = _schema_accepts(obj)
    if schema_ok and not _decode_accepts(obj):
        # Beyond JSON Schema (documented in jsonschema_gen): event_id derivation, reply == own parent
        assume(not _event_id_decides(obj))
        assume(not (obj.get("type") == "reply" and obj.get("parent_id") == obj.get("comment_id")))
    assert schema_ok == _decode_accepts(obj), obj


@settings(max_examples=100, deadline=None)
@given(records())
def test_schema_accepts_every_valid_event(record):
    assert _schema_accepts(record.to_wire())


def test_aggregate_schemas_accept_the_engine_shape_and_reject_drift():
    posts = Draft202012Validator(json.loads((SCHEMA_DIR / "engagement.posts.json").read_text()))
    value = {
        "schema_version": 1,
        "site": "s",
        "post_id": 42,
        "version": 3,
        "comments": 10,
        "replies": 2,
        "pingbacks": 4,
        "trackbacks": 0,
        "threads": 10,
        "participants": 11,
        "post_author_replies": 2,
        "max_depth": 1,
        "first_activity": "2012-03-01T10:35:00Z",
        "last_activity": "2012-03-02T10:35:00Z",
        "time_to_first_comment_seconds": 5700,
        "waiting_replies": 0,
    }
    assert posts.is_valid(value)
    assert posts.is_valid({**value, "time_to_first_comment_seconds": None, "first_activity": None})
    assert not posts.is_valid({**value, "comments": -1})
    assert not posts.is_valid({**value, "new_field": 1})
    assert not posts.is_valid({k: v for k, v in value.items() if k != "threads"})
    windows = Draft202012Validator(json.loads((SCHEMA_DIR / "engagement.windows.json").read_text()))
    window = {
        "schema_version": 1,
        "site": "s",
        "post_id": 42,
        "window": "hour",
        "window_start": "2012-03-01T10:00:00Z",
        "version": 1,
        "comments": 1,
        "replies": 0,
        "pingbacks": 0,
        "trackbacks": 0,
        "deleted": False,
    }
    assert windows.is_valid(window) and not windows.is_valid({**window, "window": "week"})
    threads = Draft202012Validator(json.loads((SCHEMA_DIR / "engagement.threads.json").read_text()))
    thread = {
        "schema_version": 1,
        "site": "s",
        "post_id": 42,
        "root_comment_id": 105,
        "version": 2,
        "replies": 1,
        "depth": 1,
        "participants": 2,
        "post_author_answered": True,
        "time_to_first_reply_seconds": 5400.5,
        "last_activity": "2012-03-01T12:00:00Z",
        "deleted": False,
    }
    assert threads.is_valid(thread) and not threads.is_valid({**thread, "post_author_answered": 1})
    assert {o.topic for o in OUTPUTS.values()} == {
        "engagement.posts",
        "engagement.threads",
        "engagement.windows",
    }
