"""One entry point for input files: WXR or JSONL, told apart by content, not by file name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from schemas.identity import AuthorKeyer
from schemas.jsonl import JsonlError, read_jsonl
from schemas.wxr import ReadError, WxrError, read_wxr

__all__ = ["read_events", "sniff_format", "ReadError", "WxrError", "JsonlError"]


def sniff_format(path: str | Path) -> str:
    """'wxr' when the first non-blank character is '<' (XML), 'jsonl' when it is '{'."""
    with open(path, "rb") as f:
        head = f.read(4096)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")  # a UTF-8 BOM and whitespace may come first
    if text.startswith(b"<"):
        return "wxr"
    if text.startswith(b"{"):
        return "jsonl"
    if not text:
        raise ReadError(path, None, "empty file: expected a WordPress export (XML) or JSONL events")
    raise ReadError(path, 1, "neither a WordPress export (XML) nor JSONL events")


def read_events(
    path: str | Path,
    site: str | None = None,
    keyer: AuthorKeyer | Callable[[], AuthorKeyer] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Wire events of a WXR or JSONL file. Raises ReadError (WxrError/JsonlError) for a broken
    file, after the events before the break; OSError when it cannot be read. `keyer` (or a
    function that makes one, so that the author-key secret is only loaded when needed) is needed
    for WXR input only: JSONL already carries author keys."""
    if sniff_format(path) == "jsonl":
        return read_jsonl(path, site=site)
    if keyer is None:
        raise TypeError("read_events: a WXR file needs an AuthorKeyer")
    if not isinstance(keyer, AuthorKeyer):
        keyer = keyer()
    return read_wxr(path, site=site, keyer=keyer, on_skip=on_skip)
