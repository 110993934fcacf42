"""Values held until a flush is sent are right-sized (schemas/json_bytes.py): orjson returns each
small result in a 4 KB buffer (~1 KB before 3.12), which made a backlog flush hold ~800 MB."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable

import orjson

from schemas.json_bytes import dumps
from schemas.wire import encode_event, make_event
from streams import engine
from streams.agents import render
from streams.post_store import entry_value, header_value


def _bytes_held_each(make: Callable[[], bytes], n: int = 200) -> float:
    """Traced bytes one value made by `make` holds while it lives."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [make() for _ in range(n)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(held) == n
    return (after - before - sys.getsizeof(held)) / n


def test_dumps_is_orjson_right_sized():
    value = {"b": [1, 2.5, None], "a": "é"}
    assert dumps(value) == orjson.dumps(value)
    assert dumps(value, orjson.OPT_SORT_KEYS) == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    assert _bytes_held_each(lambda: dumps(value)) < 200


def test_the_control_shows_the_waste():
    # the check above can fail: orjson's own result holds far more than its length
    assert _bytes_held_each(lambda: orjson.dumps({"a": 1})) > 500


def _state() -> dict:
    state = engine.new_state()
    event = engine.EventFields(
        "0" * 32, "comment", 1, 0, False, "k" * 16, "comment", 1_700_000_000.0, None, "approved"
    )
    engine.merge_batch(state, [event])
    return state


def test_held_records_are_right_sized():
    state = _state()
    change = engine.AggregateChange(
        "threads", 1, {"comments": 1, "replies": 0, "last_activity": "2024-01-01T00:00:00Z"}, False
    )
    makers = {
        "output": lambda: render("s.example/1", 5, change)[1],
        "changelog entry": lambda: entry_value(state, 1),
        "changelog header": lambda: header_value(state, (None, 0), 3),
        "published event": lambda: encode_event(
            make_event(
                site="s.example",
                post_id=1,
                type="comment",
                comment_id=1,
                author_key="k" * 16,
                event_time="2024-01-01T00:00:00Z",
                status="approved",
            )
        ),
    }
    for name, make in makers.items():
        assert _bytes_held_each(make) < 500, name
