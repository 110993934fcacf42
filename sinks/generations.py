"""Generations of the aggregate tables: rebuild into fresh tables, switch readers atomically, drop
an old generation (docs/replay.md).

Generation 1 is the plain tables (post_engagement, ...). Generation N > 1 has copies named
<table>_g<N> (same columns and keys), created when a rebuild starts. Readers use the views
<table>_current, which select from the active generation's tables; `active_generation` (one row)
says which one that is. switch() updates that row and repoints the three views in one transaction:
PostgreSQL and SQLite both run DDL inside transactions, so a reader sees either the old generation
or the new one, never a mix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Connection, Engine, MetaData, Table, func, inspect, select, text, update

from schemas.errors import BlogpulseError
from sinks.models import TABLES, ActiveGeneration, SinkGeneration, SinkTombstone, table_of

READ_VIEWS = {kind: f"{table.name}_current" for kind, table in TABLES.items()}
_ACTIVE = table_of(ActiveGeneration)
_REGISTRY = table_of(SinkGeneration)


class GenerationError(BlogpulseError):
    """A generation command that cannot be done (message says why)."""


@dataclass(frozen=True)
class GenerationTables:
    generation: int
    aggregates: dict[str, Table]  # kind -> table
    tombstones: Table

    @property
    def all(self) -> list[Table]:
        return [*self.aggregates.values(), self.tombstones]


def table_name(base: str, generation: int) -> str:
    return base if generation == 1 else f"{base}_g{generation}"


@cache
def tables_for(generation: int) -> GenerationTables:
    """The tables a generation writes. 1: the ORM tables; N > 1: copies in their own MetaData (kept
    out of the models' metadata, so Alembic autogenerate never proposes them)."""
    if generation < 1:
        raise GenerationError(f"generation: must be >= 1, got {generation}")
    if generation == 1:
        return GenerationTables(1, dict(TABLES), table_of(SinkTombstone))
    md = MetaData()
    aggregates = {
        kind: t.to_metadata(md, name=table_name(t.name, generation)) for kind, t in TABLES.items()
    }
    tomb = table_of(SinkTombstone)
    return GenerationTables(
        generation, aggregates, tomb.to_metadata(md, name=table_name(tomb.name, generation))
    )


def _now() -> datetime:
    return datetime.now(UTC)


def active(conn: Connection) -> int:
    value = conn.scalar(select(_ACTIVE.c.generation).where(_ACTIVE.c.id == 1))
    if value is None:
        raise GenerationError("active_generation is empty: run `blogpulse db upgrade`")
    return int(value)


def registered(conn: Connection) -> dict[int, dict]:
    rows = conn.execute(select(_REGISTRY).order_by(_REGISTRY.c.generation)).mappings()
    return {r["generation"]: dict(r) for r in rows}


def next_generation(engine: Engine) -> int:
    """One more than any generation ever registered (dropped ones included: never reused)."""
    with engine.connect() as conn:
        return max([active(conn), *registered(conn)]) + 1


def create(
    engine: Engine, generation: int, app_id: str, from_time: datetime | None
) -> GenerationTables:
    """Register a new generation and create its (empty) tables."""
    tables = tables_for(generation)
    with engine.begin() as conn:
        if generation in registered(conn):
            raise GenerationError(f"generation {generation} already exists")
        for t in tables.all:
            t.create(conn, checkfirst=True)
        conn.execute(
            _REGISTRY.insert().values(
                generation=generation, app_id=app_id, from_time=from_time, started_at=_now()
            )
        )
    return tables


def mark_caught_up(engine: Engine, generation: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(_REGISTRY)
            .where(_REGISTRY.c.generation == generation)
            .values(caught_up_at=_now())
        )


def _point_views(conn: Connection, generation: int) -> None:
    for kind, table in tables_for(generation).aggregates.items():
        conn.execute(text(f"DROP VIEW IF EXISTS {READ_VIEWS[kind]}"))
        conn.execute(text(f"CREATE VIEW {READ_VIEWS[kind]} AS SELECT * FROM {table.name}"))


def switch(engine: Engine, generation: int) -> int:
    """Make `generation` the one readers see; returns the previous one. One transaction."""
    with engine.begin() as conn:
        known = {n for n, info in registered(conn).items() if info["dropped_at"] is None}
        if generation not in known:
            raise GenerationError(
                f"generation {generation} does not exist or was cleaned up "
                f"(available: {', '.join(map(str, sorted(known))) or 'none'})"
            )
        # The UPDATE comes first: on SQLite it opens the transaction the DDL then joins.
        previous = active(conn)
        conn.execute(update(_ACTIVE).where(_ACTIVE.c.id == 1).values(generation=generation))
        _point_views(conn, generation)
    return previous


def cleanup(engine: Engine, generation: int) -> list[str]:
    """Drop an inactive generation's tables and mark it dropped. Returns the table names.
    Generation 1's tables are emptied, not dropped (the migrations own them)."""
    tables = tables_for(generation)
    with engine.begin() as conn:
        if generation == active(conn):
            raise GenerationError(f"generation {generation} is active: switch to another first")
        info = registered(conn).get(generation)
        if info is None or info["dropped_at"] is not None:
            raise GenerationError(f"generation {generation} does not exist or was cleaned up")
        conn.execute(
            update(_REGISTRY).where(_REGISTRY.c.generation == generation).values(dropped_at=_now())
        )
        for t in tables.all:
            if generation == 1:
                conn.execute(t.delete())
            else:
                t.drop(conn, checkfirst=True)
    return [t.name for t in tables.all]


def row_counts(engine: Engine, generation: int) -> dict[str, int | None]:
    """Rows per aggregate table of a generation (None when its table is missing)."""
    tables = tables_for(generation)
    present = set(inspect(engine).get_table_names())
    out: dict[str, int | None] = {}
    with engine.connect() as conn:
        for kind, t in tables.aggregates.items():
            out[kind] = (
                conn.scalar(select(func.count()).select_from(t)) if t.name in present else None
            )
    return out
