"""Database access for the sink: engines, the migration runner (Alembic, programmatic) and URL
masking for logs and messages."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from schemas.errors import SettingError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
SINK_TABLES = ("post_engagement", "thread_engagement", "engagement_window", "sink_tombstone")


POSTGRES_EXTRA = "pip install 'blogpulse[postgres]'"


class BadDatabaseUrl(SettingError):
    """BLOGPULSE_DB cannot be used: not a URL, or its database driver is not installed."""


def masked(url: str) -> str:
    """The URL with its password replaced by ***, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def make_engine(url: str, **kwargs) -> Engine:
    """Engine for the database URL (BLOGPULSE_DB). pool_pre_ping: a connection that died during a database
    restart is replaced instead of failing the next batch."""
    parsed = database_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        # Fail fast while the database is down; the sink retries with its own backoff.
        kwargs.setdefault("connect_args", {"connect_timeout": 5})
    try:
        engine = create_engine(parsed, **kwargs)  # imports the driver (the engine connects later)
    except (ImportError, NoSuchModuleError) as exc:
        raise BadDatabaseUrl(_missing_driver(parsed, exc)) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def database_url(url: str) -> URL:
    """The parsed URL. A plain postgresql:// URL means psycopg 3 (the `postgres` extra), not
    SQLAlchemy's default psycopg2, which blogpulse does not install."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise BadDatabaseUrl(f"BLOGPULSE_DB: not a database URL ({exc})") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _missing_driver(url: URL, exc: Exception) -> str:
    if url.drivername == "postgresql+psycopg":
        return (
            f"BLOGPULSE_DB is a PostgreSQL URL but its driver psycopg is not installed: "
            f"install the postgres extra ({POSTGRES_EXTRA})"
        )
    return f"BLOGPULSE_DB: the driver of {url.drivername} is not installed ({exc})"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL: `blogpulse stats` can read while the sink writes; busy_timeout: wait, don't fail, on a lock.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def alembic_config(engine_or_url: Engine | str):
    """Alembic Config for the sink migrations, without needing an alembic.ini on disk."""
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if isinstance(engine_or_url, Engine):
        cfg.attributes["engine"] = engine_or_url
    else:
        # '%' is ConfigParser interpolation: escape it (passwords may contain it).
        cfg.set_main_option("sqlalchemy.url", engine_or_url.replace("%", "%%"))
    return cfg


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Run the migrations up to revision (default head)."""
    from alembic import command

    command.upgrade(alembic_config(engine_or_url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def missing_tables(engine: Engine) -> list[str]:
    present = set(inspect(engine).get_table_names())
    return [t for t in SINK_TABLES if t not in present]


def downgrade(engine_or_url: Engine | str, revision: str = "base") -> None:
    """Undo migrations down to revision (default: drop every sink table)."""
    from alembic import command

    command.downgrade(alembic_config(engine_or_url), revision)
