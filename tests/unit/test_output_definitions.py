"""What the engine and the agent's render() really emit has exactly the fields of the output
definitions (schemas.aggregates.OUTPUTS, the source of the shipped JSON Schemas), in that order,
and validates against the shipped files: new aggregates, changed ones, deletions (a thread and its
windows gone after a moderation) and the refresh tombstones of engine.absent()."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson
from jsonschema import Draft202012Validator

from schemas.aggregates import OUTPUTS
from streams import agents, engine

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema"
AUTHOR = "a" * 64


def _event(
    type_: str,
    cid: int,
    parent: int,
    t: float,
    status: str = "approved",
    kind: str = "comment",
    post_author: bool = False,
) -> engine.EventFields:
    return engine.EventFields(
        hashlib.md5(f"{type_}{cid}{status}{t}".encode()).hexdigest(),  # 32 hex, as on the wire
        type_,
        cid,
        parent,
        post_author,
        "" if type_ == "moderation" else AUTHOR,
        kind,
        t,
        1330592400.0,
        status,
    )


def _changes() -> list[engine.AggregateChange]:
    state = engine.new_state()
    for ev in (
        _event("comment", 1, 0, 1330596000.0),
        _event("reply", 2, 1, 1330599600.5, post_author=True),
        _event("comment", 3, 0, 1330700000.0),
        _event("pingback", 4, 0, 1330600000.0, kind="trackback"),
    ):
        engine.merge_event(state, ev)
    first = engine.derive(state, engine.now_of(state), 3600.0)
    changes = engine.diff(None, first)
    engine.merge_event(state, _event("moderation", 3, 0, 1330800000.0, status="spam"))
    second = engine.derive(state, engine.now_of(state), 3600.0)
    deletions = engine.diff(first, second)
    assert any(c.deleted for c in deletions)
    tombstones = engine.absent(state, second)
    assert tombstones and all(c.deleted for c in tombstones)
    return changes + deletions + tombstones


def test_rendered_outputs_have_exactly_the_defined_fields_and_validate():
    validators = {
        kind: Draft202012Validator(json.loads((SCHEMA_DIR / f"{output.topic}.json").read_text()))
        for kind, output in OUTPUTS.items()
    }
    seen = set()
    for change in _changes():
        _, raw = agents.render("blog.example/7", 1733100000000, change)
        value = orjson.loads(raw)
        assert list(value) == list(OUTPUTS[change.aggregate].fields()), change
        errors = [e.message for e in validators[change.aggregate].iter_errors(value)]
        assert not errors, (value, errors)
        seen.add((change.aggregate, change.deleted))
    assert seen == {
        ("posts", False),
        ("threads", False),
        ("threads", True),
        ("windows", False),
        ("windows", True),
    }


def test_engine_values_are_the_typed_values():
    for change in _changes():
        assert list(change.value) == list(OUTPUTS[change.aggregate].value.__annotations__)
