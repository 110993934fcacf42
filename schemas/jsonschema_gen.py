"""Generates the JSON Schema (draft 2020-12) files in schemas/jsonschema/ from the Records of
schemas.events, the output definitions of schemas.aggregates (what the engine emits) plus the limits of schemas.wire, so the files cannot drift
from the code: `python -m schemas.jsonschema_gen` rewrites them, and a unit test checks the shipped
files equal this output.

What JSON Schema cannot say, and only decode_event checks: event_id matches its derivation, times
lie between 1995 and now + 1 day and are real dates (the pattern allows Feb 30), a reply's parent_id
differs from its comment_id, site is printable (the pattern only excludes '/' and control
characters), the 64 KiB size limit, and integers written with a fraction (1.0 is an integer to JSON
Schema, not to decode_event)."""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

from schemas import aggregates, events, wire

OUT_DIR = Path(__file__).resolve().parent / "jsonschema"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://blogpulse.invalid/schemas/"  # identifiers only, never fetched
# Patterns end in $(?!\n): in ECMA-262 `$` is the end of input, but Python's re (the jsonschema
# package) also lets `$` match before a final newline; the lookahead makes both read the same.
END = "$(?!\\n)"
TIME_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z"
    + END
)
MAX_ID = wire.MAX_ID

_PY_TYPES = {int: "integer", bool: "boolean", str: "string", float: "number"}


def _json_type(annotation: Any) -> dict[str, Any]:
    """Python annotation (as faust resolved it) -> JSON Schema type fragment."""
    args = typing.get_args(annotation)
    if annotation is typing.Any:
        return {}
    if args:  # Optional[...] / Union[...]
        types: list[Any] = []  # JSON type names; None for an unconstrained arm
        for arg in args:
            frag = _json_type(arg)
            t = frag.get("type")
            types.extend(t if isinstance(t, list) else [t])
        if "integer" in types and "number" in types:
            types.remove("integer")
        extra = {k: v for a in args for k, v in _json_type(a).items() if k != "type"}
        return {"type": types if len(types) > 1 else types[0], **extra}
    if annotation is type(None):
        return {"type": "null"}
    if getattr(annotation, "__name__", "") == "datetime":
        return {"type": "string", "pattern": TIME_PATTERN}
    return {"type": _PY_TYPES[annotation]}


def _with(frag: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {**frag, **more}


# ------------------------------------------------------------------------------------ input events
_EVENT_REQUIRED = [
    "schema_version",
    "event_id",
    "type",
    "site",
    "post_id",
    "comment_id",
    "event_time",
    "status",
]


def _event_field(name: str, annotation: Any, type_: str) -> dict[str, Any]:
    frag = _json_type(annotation)
    if name == "schema_version":
        return _with(frag, const=wire.SCHEMA_VERSION)
    if name == "event_id":
        return _with(
            frag,
            pattern="^[0-9a-f]{32}" + END,
            description="first 32 hex chars of sha256(site/post_id/comment_id/type/status/event_time)",
        )
    if name == "site":
        return _with(frag, minLength=1, maxLength=200, pattern="^[^/\\u0000-\\u001f\\u007f]+$")
    if name in ("post_id", "comment_id"):
        return _with(frag, minimum=1, maximum=MAX_ID)
    if name == "parent_id":
        if type_ == "reply":
            return _with(
                frag,
                minimum=1,
                maximum=MAX_ID,
                description="comment_id of the parent (not its own)",
            )
        if type_ == "comment":
            return _with(frag, const=0)
        return _with(frag, minimum=0, maximum=MAX_ID)
    if name == "author_key":
        pattern = "^([0-9a-f]{64})?" + END if type_ == "moderation" else "^[0-9a-f]{64}" + END
        return _with(
            frag,
            pattern=pattern,
            description="HMAC-SHA256 of the normalised e-mail, else name + URL",
        )
    if name == "kind":
        return _with(frag, enum=list(wire.KINDS[type_]))
    if name == "source_url":
        return _with(frag, maxLength=2000)
    if name == "status":
        return _with(frag, enum=list(wire.STATUSES))
    if name in ("event_time", "post_time"):
        return _with(frag, description="ISO 8601 UTC, 1995 .. now + 1 day")
    return frag


def event_schema(record: type[events.BlogEvent]) -> dict[str, Any]:
    type_ = record.EVENT_TYPE
    hints = events.record_fields(record)
    props: dict[str, Any] = {}
    for name in wire.FIELDS:  # contract order
        if name == "type":
            props[name] = {"type": "string", "const": type_}
        else:
            props[name] = _event_field(name, hints[name], type_)
    required = list(_EVENT_REQUIRED)
    if type_ == "reply":
        required.append("parent_id")
    if type_ != "moderation":
        required.append("author_key")
    if type_ == "pingback":
        required.append("kind")  # no default kind for pings
    return {
        "$schema": DRAFT,
        "$id": f"{ID_BASE}event.{type_}.json",
        "title": f"blogpulse input event: {type_} (schema_version {wire.SCHEMA_VERSION})",
        "description": (record.__doc__ or "").strip(),
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def any_event_schema() -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": f"{ID_BASE}event.json",
        "title": f"blogpulse input event, any type (schema_version {wire.SCHEMA_VERSION})",
        "oneOf": [{"$ref": f"event.{t}.json"} for t in events.RECORD_TYPES],
    }


# ------------------------------------------------------------------------------------ aggregates
def aggregate_schema(output: aggregates.Output) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, annotation in output.fields().items():
        frag = _json_type(annotation)
        if name in aggregates.TIME_FIELDS:
            frag = _with(frag, pattern=TIME_PATTERN)
        if name == "site":
            frag = _with(frag, minLength=1, pattern="^[^/]+$")
        props[name] = _with(frag, **aggregates.CONSTRAINTS.get(name, {}))
    return {
        "$schema": DRAFT,
        "$id": f"{ID_BASE}{output.topic}.json",
        "title": f"blogpulse output: {output.topic} value",
        "description": (output.value.__doc__ or "").strip(),
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    """file name -> schema."""
    out = {f"event.{t}.json": event_schema(r) for t, r in events.RECORD_TYPES.items()}
    out["event.json"] = any_event_schema()
    out.update({f"{o.topic}.json": aggregate_schema(o) for o in aggregates.OUTPUTS.values()})
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    OUT_DIR.mkdir(exist_ok=True)
    wanted = all_schemas()
    for old in OUT_DIR.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    for name, schema in wanted.items():
        (OUT_DIR / name).write_text(render(schema), encoding="utf-8")
    print(f"wrote {len(wanted)} schema files to {OUT_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
