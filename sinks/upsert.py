"""Version-guarded writes of output-topic messages (docs/architecture.md, "Output topics").

A batch is first collapsed to the newest version per key, then written in one transaction with
dialect-native upserts (INSERT ... ON CONFLICT DO UPDATE ... WHERE row.version < excluded.version,
on SQLite and PostgreSQL) and version-guarded deletes. So an older or repeated version never
overwrites a newer row, and replaying any mix of messages, in any order, ends in the same rows.

Deletes (`deleted: true` on threads and windows) also record a tombstone (kind, key, version):
once the row is gone there is no stored version left to compare with, and a late older message
would otherwise bring the row back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from schemas.errors import BlogpulseError
from schemas.topic_names import output_kind
from sinks.models import TABLES, SinkOffset, SinkTombstone, table_of

KINDS = tuple(TABLES)  # posts, threads, windows
WINDOWS = ("hour", "day")
_TOMBSTONES = table_of(SinkTombstone)
_OFFSETS = table_of(SinkOffset)

# Value fields per kind, and how each is checked/converted into its column value.
_INT, _OPT_NUM, _OPT_TIME, _TIME, _BOOL, _STR = "int", "opt_num", "opt_time", "time", "bool", "str"
FIELDS: dict[str, dict[str, str]] = {
    "posts": {
        "site": _STR,
        "post_id": _INT,
        "comments": _INT,
        "replies": _INT,
        "pingbacks": _INT,
        "trackbacks": _INT,
        "threads": _INT,
        "participants": _INT,
        "post_author_replies": _INT,
        "max_depth": _INT,
        "first_activity": _OPT_TIME,
        "last_activity": _OPT_TIME,
        "time_to_first_comment_seconds": _OPT_NUM,
        "waiting_replies": _INT,
    },
    "threads": {
        "site": _STR,
        "post_id": _INT,
        "root_comment_id": _INT,
        "replies": _INT,
        "depth": _INT,
        "participants": _INT,
        "post_author_answered": _BOOL,
        "time_to_first_reply_seconds": _OPT_NUM,
        "last_activity": _OPT_TIME,
    },
    "windows": {
        "site": _STR,
        "post_id": _INT,
        "window": _STR,
        "window_start": _TIME,
        "comments": _INT,
        "replies": _INT,
        "pingbacks": _INT,
        "trackbacks": _INT,
    },
}
PRIMARY_KEYS = {kind: tuple(c.name for c in TABLES[kind].primary_key.columns) for kind in KINDS}

# (aggregate kind or topic, Kafka key, decoded value; None: a Kafka tombstone, refused)
Message = tuple[str, Any, Mapping[str, Any] | None]
Target = Engine | Connection | Session


class InvalidAggregate(BlogpulseError, ValueError):
    """An output message the sink cannot store; names the field and why."""

    def __init__(self, kind: str, field_name: str, reason: str) -> None:
        super().__init__(f"{kind}: {field_name}: {reason}")
        self.kind, self.field, self.reason = kind, field_name, reason


@dataclass(frozen=True)
class Change:
    kind: str
    version: int
    deleted: bool
    row: dict[str, Any]  # column values without version/updated_at

    @property
    def pk(self) -> tuple:
        return tuple(self.row[c] for c in PRIMARY_KEYS[self.kind])

    @property
    def tombstone_key(self) -> str:
        # Canonical (from the parsed primary key), so formatting variants of a time map to one key.
        return "/".join(_key_part(v) for v in self.pk)


@dataclass
class Batch:
    """A collapsed batch: the newest change per primary key, per kind."""

    changes: dict[str, dict[tuple, Change]] = field(default_factory=lambda: {k: {} for k in KINDS})
    messages: int = 0
    # (topic, partition) -> next offset to read: stored with the rows (sinks.models.SinkOffset)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(c) for c in self.changes.values())


@dataclass
class WriteResult:
    upserted: dict[str, int] = field(default_factory=dict)  # rows sent as upserts, per table
    deleted: dict[str, int] = field(default_factory=dict)  # delete statements sent, per table
    skipped_tombstoned: int = 0  # upserts older than a recorded delete

    @property
    def rows(self) -> int:
        return sum(self.upserted.values()) + sum(self.deleted.values())


def _key_part(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _parse_time(kind: str, name: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidAggregate(
            kind, name, f"expected an ISO 8601 UTC string, got {type(value).__name__}"
        )
    try:
        dt = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise InvalidAggregate(kind, name, f"not an ISO 8601 time: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise InvalidAggregate(kind, name, "time without a zone (expected ...Z)")
    return dt.astimezone(UTC)


def _convert(kind: str, name: str, how: str, value: Any) -> Any:
    if how == _INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidAggregate(kind, name, f"expected an integer, got {type(value).__name__}")
        if value < 0 or value > 2**63 - 1:
            raise InvalidAggregate(kind, name, f"out of range: {value}")
        return value
    if how == _STR:
        if not isinstance(value, str) or not value:
            raise InvalidAggregate(kind, name, "expected a non-empty string")
        if len(value) > 255:
            raise InvalidAggregate(kind, name, "longer than 255 characters")
        return value
    if how == _BOOL:
        if not isinstance(value, bool):
            raise InvalidAggregate(kind, name, f"expected true/false, got {type(value).__name__}")
        return value
    if how == _OPT_NUM:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidAggregate(
                kind, name, f"expected a number or null, got {type(value).__name__}"
            )
        return float(value)
    if how == _OPT_TIME:
        return None if value is None else _parse_time(kind, name, value)
    return _parse_time(kind, name, value)


def to_change(kind: str, value: Mapping[str, Any] | None) -> Change:
    """Check and convert one decoded output value. Raises InvalidAggregate naming the field."""
    kind = output_kind(kind) or kind
    if kind not in FIELDS:
        raise InvalidAggregate(
            str(kind), "kind", f"expected one of {', '.join(KINDS)} or a topic name"
        )
    if not isinstance(value, Mapping):
        raise InvalidAggregate(kind, "value", "expected a JSON object")
    version = value.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**63:
        raise InvalidAggregate(kind, "version", "expected a non-negative integer")
    deleted = value.get("deleted", False) if kind != "posts" else False
    if not isinstance(deleted, bool):
        raise InvalidAggregate(kind, "deleted", "expected true/false")
    row = {}
    pk = PRIMARY_KEYS[kind]
    for name, how in FIELDS[kind].items():
        if name not in value:
            # A delete needs only the key (the old values it carries are not stored).
            if deleted and name not in pk:
                continue
            raise InvalidAggregate(kind, name, "missing")
        row[name] = _convert(kind, name, how, value[name])
    if kind == "windows" and row["window"] not in WINDOWS:
        raise InvalidAggregate(kind, "window", "expected 'hour' or 'day'")
    if row["post_id"] < 1:
        raise InvalidAggregate(kind, "post_id", "must be > 0")
    return Change(kind, version, deleted, row)


def collapse(
    messages: Iterable[Message],
    on_invalid: Callable[[Message, InvalidAggregate], None] | None = None,
) -> Batch:
    """Keep the newest version per key (the later message on a tie). A bad message raises
    InvalidAggregate, or goes to on_invalid and is left out when that is given."""
    batch = Batch()
    for message in messages:
        kind, _key, value = message
        try:
            change = to_change(kind, value)
        except InvalidAggregate as exc:
            if on_invalid is None:
                raise
            on_invalid(message, exc)
            continue
        batch.messages += 1
        per_key = batch.changes[change.kind]
        pk = change.pk
        old = per_key.get(pk)
        if old is None or change.version >= old.version:
            per_key[pk] = change
    return batch


def _insert(dialect: str):
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"the sink supports PostgreSQL and SQLite, not {dialect}")


def _upsert_stmt(insert, table):
    stmt = insert(table)
    pk = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk}
    return stmt.on_conflict_do_update(
        index_elements=pk, set_=updates, where=table.c.version < stmt.excluded.version
    )


_pg_statements: dict[str, str] = {}


def _pg_upsert_sql(table) -> str:
    """One statement for any number of rows: the rows travel as one JSON array, which PostgreSQL
    turns into rows of the table's own type (json_populate_recordset). orjson encodes it in C,
    and the statement text never changes (executemany sends a statement per row; psycopg's array
    adaptation of a column list runs in Python)."""
    sql = _pg_statements.get(table.name)
    if sql is None:
        quote = '"{}"'.format
        cols = [c.name for c in table.columns]
        pk = [c.name for c in table.primary_key.columns]
        updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in cols if c not in pk)
        sql = _pg_statements[table.name] = (
            f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, cols))}) "
            f"SELECT {', '.join(map(quote, cols))} "
            f"FROM json_populate_recordset(NULL::{quote(table.name)}, %(rows)s) "
            f"ON CONFLICT ({', '.join(map(quote, pk))}) DO UPDATE SET {updates} "
            f"WHERE {quote(table.name)}.version < EXCLUDED.version"
        )
    return sql


def _pg_upsert(conn: Connection, table, upserts: list[Change], now: datetime) -> None:
    rows = [{**c.row, "version": c.version, "updated_at": now} for c in upserts]
    conn.exec_driver_sql(_pg_upsert_sql(table), {"rows": orjson.dumps(rows).decode()})


def _delete_stmt(table):
    pk = [c.name for c in table.primary_key.columns]
    cond = [table.c[name] == bindparam(f"k_{name}") for name in pk]
    return delete(table).where(and_(*cond, table.c.version < bindparam("k_version")))


def _tombstones(
    conn: Connection, batch: Batch, tombstones=_TOMBSTONES
) -> dict[tuple[str, str], int]:
    """Recorded deletes for the batch's thread/window upserts: one query per kind, by (kind, key),
    the primary key's order, so that it is an index lookup (by key alone it scanned the whole
    table, whose rows grow with every delete ever recorded: docs/performance.md)."""
    found: dict[tuple[str, str], int] = {}
    for kind in ("threads", "windows"):
        keys = sorted({c.tombstone_key for c in batch.changes[kind].values() if not c.deleted})
        if not keys:
            continue
        if conn.dialect.name == "postgresql":
            rows = conn.exec_driver_sql(
                f'SELECT key, version FROM "{tombstones.name}" '
                "WHERE kind = %(kind)s AND key = ANY(%(keys)s)",
                {"kind": kind, "keys": keys},
            )
            found.update({(kind, key): v for key, v in rows})
            continue
        for i in range(0, len(keys), 500):  # under SQLite's old 999-variable limit
            rows = conn.execute(
                select(tombstones.c.key, tombstones.c.version).where(
                    tombstones.c.kind == kind, tombstones.c.key.in_(keys[i : i + 500])
                )
            )
            found.update({(kind, key): v for key, v in rows})
    return found


def write_collapsed(
    conn: Connection, batch: Batch, now: datetime | None = None, generation: int = 1
) -> WriteResult:
    """Write a collapsed batch on conn (inside the caller's transaction), into the tables of
    `generation` (sinks/generations.py; 1 = the plain tables)."""
    from sinks.generations import tables_for

    now = now or datetime.now(UTC)
    insert = _insert(conn.dialect.name)
    result = WriteResult()
    gen_tables = tables_for(generation)
    tombstones = gen_tables.tombstones
    dead = _tombstones(conn, batch, tombstones)
    for kind in KINDS:
        changes = batch.changes[kind]
        if not changes:
            continue
        table = gen_tables.aggregates[kind]
        # In key order: two sinks writing one database (a rebalance, a second worker) then lock
        # rows in the same order and cannot deadlock.
        ordered = [changes[pk] for pk in sorted(changes)]
        upserts = [c for c in ordered if not c.deleted]
        deletes = [c for c in ordered if c.deleted]
        if dead and kind != "posts":
            kept = [c for c in upserts if c.version > dead.get((kind, c.tombstone_key), -1)]
            result.skipped_tombstoned += len(upserts) - len(kept)
            upserts = kept
        if upserts:
            if conn.dialect.name == "postgresql":
                _pg_upsert(conn, table, upserts, now)
            else:
                conn.execute(
                    _upsert_stmt(insert, table),
                    [{**c.row, "version": c.version, "updated_at": now} for c in upserts],
                )
            result.upserted[table.name] = len(upserts)
        if deletes:
            params = [
                {**{f"k_{n}": c.row[n] for n in PRIMARY_KEYS[kind]}, "k_version": c.version}
                for c in deletes
            ]
            conn.execute(_delete_stmt(table), params)
            tomb = insert(tombstones)
            conn.execute(
                tomb.on_conflict_do_update(
                    index_elements=["kind", "key"],
                    set_={"version": tomb.excluded.version, "updated_at": tomb.excluded.updated_at},
                    where=tombstones.c.version < tomb.excluded.version,
                ),
                [
                    {"kind": kind, "key": c.tombstone_key, "version": c.version, "updated_at": now}
                    for c in deletes
                ],
            )
            result.deleted[table.name] = len(deletes)
    if batch.offsets:
        _store_offsets(conn, insert, batch.offsets, now)
    return result


def _store_offsets(
    conn: Connection, insert, offsets: Mapping[tuple[str, int], int], now: datetime
) -> None:
    stmt = insert(_OFFSETS)
    conn.execute(
        # Only forwards: a sink that lost its partitions in a rebalance may still commit a batch
        # after the new owner did.
        stmt.on_conflict_do_update(
            index_elements=["topic", "partition"],
            set_={"next_offset": stmt.excluded.next_offset, "updated_at": stmt.excluded.updated_at},
            where=_OFFSETS.c.next_offset < stmt.excluded.next_offset,
        ),
        [
            {"topic": t, "partition": p, "next_offset": o, "updated_at": now}
            for (t, p), o in sorted(offsets.items())
        ],
    )


def store_offsets(engine: Engine, offsets: Mapping[tuple[str, int], int]) -> None:
    """Move the stored positions forward to `offsets` (the demo's and the benchmark's start at
    the end of shared topics)."""
    if offsets:
        with engine.begin() as conn:
            _store_offsets(conn, _insert(conn.dialect.name), offsets, datetime.now(UTC))


def read_offsets(target: Engine | Connection, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The stored next offset of every partition of these topics that the sink has written."""
    query = select(_OFFSETS.c.topic, _OFFSETS.c.partition, _OFFSETS.c.next_offset).where(
        _OFFSETS.c.topic.in_(sorted(set(topics)))
    )
    if isinstance(target, Engine):
        with target.connect() as conn:
            rows = conn.execute(query).all()
    else:
        rows = target.execute(query).all()
    return {(t, p): o for t, p, o in rows}


def write(target: Target, batch: Batch, generation: int = 1) -> WriteResult:
    """Write a collapsed batch. An Engine: one transaction, committed here. A Connection or
    Session: run inside its transaction; the caller commits."""
    if isinstance(target, Engine):
        with target.begin() as conn:
            return write_collapsed(conn, batch, generation=generation)
    if isinstance(target, Session):
        return write_collapsed(target.connection(), batch, generation=generation)
    return write_collapsed(target, batch, generation=generation)


def write_batch(target: Target, messages: Iterable[Message], generation: int = 1) -> WriteResult:
    """Collapse decoded output messages (kind or topic name, key, value dict) to the newest version
    per key and write them in one transaction (see write()). Raises InvalidAggregate on a bad
    message before anything is written."""
    return write(target, collapse(messages), generation)
