"""JSON encoding of values that are held after they are made (a flush's output and changelog
records, published events): orjson.dumps, copied into a bytes object of the encoded size.

orjson (3.12 onwards, ~1 KB before) returns its 4 KB working buffer as the bytes object without
shrinking it, so every small value it encodes holds 4 KB for as long as it lives: a flush of a
backlog holding 200,000 records took ~800 MB for ~50 MB of JSON (docs/performance.md, "orjson's
buffers"). The copy costs ~0.06 µs per value."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any, option: int | None = None) -> bytes:
    """`orjson.dumps(value, option=option)`, right-sized."""
    # a two-part join always copies (unlike `+ b""`, which returns the same object)
    return b"".join((orjson.dumps(value, option=option), b""))
