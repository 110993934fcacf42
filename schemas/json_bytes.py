"""JSON encoding of values that are held after they are made (a flush's output and changelog
records, published events): orjson.dumps, copied into a bytes object of the encoded size.

orjson (3.12 onwards; a smaller buffer before) returns its working buffer as the bytes object
without shrinking it, so every small value it encodes holds several KB for as long as it lives
(docs/performance.md, "2026-12-04: orjson's 4 KB buffers")."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any, option: int | None = None) -> bytes:
    """`orjson.dumps(value, option=option)`, right-sized."""
    # a two-part join always copies (unlike `+ b""`, which returns the same object)
    return b"".join((orjson.dumps(value, option=option), b""))
