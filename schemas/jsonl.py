"""JSONL input: one wire-format event (docs/architecture.md) per line, blank lines skipped. Every
line is checked with schemas.wire.validate, so a bad line stops the read with its file and line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.identity import event_id as derive_event_id
from schemas.wire import InvalidEvent, decode_event
from schemas.wxr import ReadError


class JsonlError(ReadError):
    """A JSONL line that is not a valid event."""


def read_jsonl(path: str | Path, site: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the events of a JSONL file in order (valid lines before a bad one are yielded first).
    `site` renames the site of every event (event_id re-derived)."""
    path = Path(path)
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = decode_event(line.strip())
            except InvalidEvent as exc:
                raise JsonlError(path, number, f"invalid event: {exc}") from None
            if site and site != event["site"]:
                event["site"] = site
                event["event_id"] = derive_event_id(
                    site,
                    event["post_id"],
                    event["comment_id"],
                    event["type"],
                    event["status"],
                    event["event_time"],
                )
            yield event
